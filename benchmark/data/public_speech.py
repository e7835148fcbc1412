"""Loaders of public speech datasets with frame phone labels, read from a local copy:
LibriSpeech with the CPC frame alignments, and TIMIT (61 phones folded to 39)."""

from pathlib import Path

import soundfile as sf

from benchmark.data.common import unit_hash
from benchmark.data.manifest import Dataset, Item
from benchmark.errors import MelbenchError

CPC_FRAME_S = 0.01
# The 24 speakers of TIMIT's core test set.
TIMIT_CORE_TEST = frozenset({
    "MDAB0", "MWBT0", "FELC0", "MTAS1", "MWEW0", "FPAS0", "MJMP0", "MLNT0", "FPKT0", "MLLL0", "MTLS0", "FJLM0",
    "MBPM0", "MKLT0", "FNLP0", "MCMJ0", "MJDH0", "FMGD0", "MGRT0", "MNJM0", "FDHC0", "MJLN0", "MPAM0", "FMLD0",
})
# Lee & Hon (1989) folding of TIMIT's 61 phones onto 39; the glottal stop q is dropped.
_TIMIT_FOLD = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
    "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    **{c: "sil" for c in ("pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi")},
}
TIMIT_39 = (
    "aa", "ae", "ah", "aw", "ay", "b", "ch", "d", "dh", "dx", "eh", "er", "ey", "f", "g", "hh", "ih", "iy", "jh",
    "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "sil", "t", "th", "uh", "uw", "v", "w", "y", "z",
)


def frames_to_segments(labels: list[str], frame_s: float) -> list[tuple[float, float, str]]:
    """Merge runs of equal frame labels into `(start_s, end_s, label)` segments."""
    segments: list[tuple[float, float, str]] = []
    for i, label in enumerate(labels):
        if segments and segments[-1][2] == label:
            segments[-1] = (segments[-1][0], round((i + 1) * frame_s, 4), label)
        else:
            segments.append((round(i * frame_s, 4), round((i + 1) * frame_s, 4), label))
    return segments


def load_librispeech(root: Path, seed: int = 0) -> Dataset:
    """LibriSpeech with the CPC phone alignments (Oord et al. 2018).

    Layout: `<root>/converted_aligned_phones.txt` (`<utt-id> <phone index per 10 ms frame>...`),
    `<root>/train_split.txt` and `<root>/test_split.txt` (one utterance id per line), and the
    LibriSpeech audio anywhere under `<root>` (`.../<spk>/<chapter>/<utt-id>.flac`).
    Valid: a seeded 10% of the training utterances. Classes: the 41 phone indices as strings.
    """
    aligned = root / "converted_aligned_phones.txt"
    for f in (aligned, root / "train_split.txt", root / "test_split.txt"):
        if not f.exists():
            raise MelbenchError(f"{f}: not found (expected the CPC alignment files in {root})")
    audio = {p.stem: p for p in root.rglob("*.flac")}
    labels = {}
    for line in aligned.read_text().splitlines():
        parts = line.split()
        if parts:
            labels[parts[0]] = parts[1:]
    items = []
    for split_file, split in ((root / "train_split.txt", "train"), (root / "test_split.txt", "test")):
        for utt in split_file.read_text().split():
            if utt not in audio or utt not in labels:
                continue  # the CPC lists cover train-clean-100 only; other subsets may be absent
            side = "valid" if split == "train" and unit_hash(seed, "librispeech-valid", utt) < 0.1 else split
            items.append(Item(id=utt, path=audio[utt], split=side, group=utt,
                              duration_s=sf.info(str(audio[utt])).duration,
                              segments=tuple(frames_to_segments(labels[utt], CPC_FRAME_S)),
                              extra={"speaker": utt.split("-")[0]}))
    if not items:
        raise MelbenchError(f"{root}: no utterance has both audio and a CPC alignment")
    classes = tuple(str(i) for i in range(41))
    return Dataset("librispeech-phones", "frame", "multiclass", classes, tuple(items), root,
                   "LibriSpeech train-clean-100 frame phones (CPC alignments, 41 classes)", str(root))


def _ci(folder: Path, name: str) -> Path | None:
    """Child of `folder` named `name`, any letter case (TIMIT copies come upper- or lower-case)."""
    return next((p for p in folder.iterdir() if p.name.lower() == name.lower()), None)


def load_timit(root: Path, seed: int = 0) -> Dataset:
    """TIMIT: `<root>/{TRAIN,TEST}/DR*/<speaker>/<sentence>.{WAV,PHN}` (any letter case).

    SA sentences are left out (every speaker reads them). Splits: TRAIN -> train, the core
    test speakers -> test, the other TEST speakers -> valid (the usual dev speakers come from
    there). Phones are folded from 61 to 39 (Lee & Hon); `q` segments are dropped.
    """
    items = []
    for part, default in (("train", "train"), ("test", "valid")):
        folder = _ci(root, part) if root.is_dir() else None
        if folder is None:
            raise MelbenchError(f"{root}: no {part.upper()}/ folder (TIMIT layout)")
        for phn in sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".phn"):
            if phn.stem.lower().startswith("sa"):
                continue
            wav = next((p for p in phn.parent.iterdir() if p.stem.lower() == phn.stem.lower()
                        and p.suffix.lower() == ".wav"), None)
            if wav is None:
                continue
            speaker = phn.parent.name.upper()
            split = "test" if part == "test" and speaker in TIMIT_CORE_TEST else default
            segments = []
            for line in phn.read_text().splitlines():
                start, end, phone = line.split()
                if phone != "q":
                    segments.append((int(start) / 16000, int(end) / 16000, _TIMIT_FOLD.get(phone, phone)))
            items.append(Item(id=f"{speaker}-{phn.stem.upper()}", path=wav, split=split, group=speaker,
                              duration_s=sf.info(str(wav)).duration, segments=tuple(segments),
                              extra={"speaker": speaker}))
    if not items:
        raise MelbenchError(f"{root}: no .PHN/.WAV pairs found")
    return Dataset("timit-phones", "frame", "multiclass", TIMIT_39, tuple(items), root,
                   "TIMIT frame phones (39 folded classes)", str(root))
