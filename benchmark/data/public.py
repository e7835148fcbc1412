"""Loaders of public music datasets read from a local copy, in their real on-disk layout:
GTZAN, MagnaTagATune (top-50 tags, standard split) and NSynth. Speech loaders live in
`benchmark.data.public_speech`; `LOADERS` names them all for `load_dataset("LOADER:PATH")`."""

import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Callable

import soundfile as sf

from benchmark.data.manifest import Dataset, Item
from benchmark.data.splits import grouped_stratified_split
from benchmark.errors import MelbenchError

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
# MagnaTagATune's usual split (as in Choi et al. 2016 and later work): by the 16 audio folders.
MTAT_SPLIT = {**{d: "train" for d in "0123456789ab"}, "c": "valid", **{d: "test" for d in "def"}}


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise MelbenchError(f"{path}: not found (expected {what})")
    return path


def load_gtzan(root: Path, seed: int = 0) -> Dataset:
    """GTZAN genre: `<root>/genres/<genre>/<genre>.000NN.wav` (or `genres_original/`).

    Splits: when `train_filtered.txt`, `valid_filtered.txt` and `test_filtered.txt` (the
    fault-filtered artist split of Kereliuk et al., lines like `blues/blues.00012.wav`) are in
    `root`, they are used and unlisted files are left out; otherwise a seeded stratified split.
    """
    base = next((root / d for d in ("genres", "genres_original") if (root / d).is_dir()), None)
    if base is None:
        raise MelbenchError(f"{root}: no genres/ or genres_original/ folder (GTZAN layout)")
    files = sorted(p for g in GTZAN_GENRES for p in (base / g).glob(f"{g}.*.wav"))
    if not files:
        raise MelbenchError(f"{base}: no <genre>/<genre>.NNNNN.wav files")
    lists = {s: root / f"{s}_filtered.txt" for s in ("train", "valid", "test")}
    if all(p.exists() for p in lists.values()):
        split_of = {line.strip(): s for s, p in lists.items() for line in p.read_text().splitlines() if line.strip()}
        chosen = [(f, split_of[f"{f.parent.name}/{f.name}"]) for f in files if f"{f.parent.name}/{f.name}" in split_of]
    else:
        assigned = grouped_stratified_split([f.name for f in files], [f.parent.name for f in files], seed)
        chosen = [(f, assigned[f.name]) for f in files]
    items = tuple(Item(id=f.stem, path=f, split=s, group=f.stem, duration_s=sf.info(str(f)).duration,
                       labels=(f.parent.name,)) for f, s in chosen)
    return Dataset("gtzan", "clip", "multiclass", GTZAN_GENRES, items, root, "GTZAN genre (10 classes)", str(root))


def load_magnatagatune(root: Path, seed: int = 0, n_tags: int = 50) -> Dataset:
    """MagnaTagATune: `<root>/annotations_final.csv` (tab-separated: clip_id, 188 tag
    columns, mp3_path) and `<root>/mp3/<0-f>/<file>.mp3`.

    Tags: the `n_tags` most frequent over all clips (the standard top-50). Split by audio
    folder: 0-b train, c valid, d-f test. Clips without any top tag are kept (all-negative).
    Group: the track (file name without its `-NN-NN` segment suffix).
    """
    table = _need(root / "annotations_final.csv", "annotations_final.csv")
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "mp3_path" not in rows[0]:
        raise MelbenchError(f"{table}: expected tab-separated columns clip_id, tags..., mp3_path")
    tags = [c for c in rows[0] if c not in ("clip_id", "mp3_path")]
    counts = Counter({t: sum(r[t] == "1" for r in rows) for t in tags})
    top = sorted(t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_tags])
    items = []
    for r in rows:
        path = root / "mp3" / r["mp3_path"]
        folder = r["mp3_path"].split("/")[0]
        if folder not in MTAT_SPLIT or not path.exists() or path.stat().st_size == 0:
            continue  # a handful of MTAT mp3 files are empty in the official archive
        track = re.sub(r"-\d+-\d+$", "", path.stem)
        items.append(Item(id=r["clip_id"], path=path, split=MTAT_SPLIT[folder], group=track,
                          duration_s=29.1, labels=tuple(t for t in top if r[t] == "1")))
    return Dataset("magnatagatune", "clip", "multilabel", tuple(top), tuple(items), root,
                   f"MagnaTagATune top-{n_tags} tags", str(root))


def load_nsynth(root: Path, seed: int = 0, target: str = "family") -> Dataset:
    """NSynth: `<root>/nsynth-{train,valid,test}/examples.json` + `audio/<note>.wav`.

    Args:
        root: the folder holding the three split folders.
        target: "family" (11 instrument families) or "pitch" (MIDI pitch).
    """
    items, classes = [], set()
    for split in ("train", "valid", "test"):
        folder = _need(root / f"nsynth-{split}", f"nsynth-{split}/ folder")
        notes = json.loads(_need(folder / "examples.json", "examples.json").read_text())
        for note, meta in sorted(notes.items()):
            label = meta["instrument_family_str"] if target == "family" else str(meta["pitch"])
            classes.add(label)
            items.append(Item(id=note, path=folder / "audio" / f"{note}.wav", split=split,
                              group=meta["instrument_str"], duration_s=4.0, labels=(label,),
                              extra={"pitch": meta["pitch"], "velocity": meta["velocity"]}))
    order = sorted(classes, key=int) if target == "pitch" else sorted(classes)
    return Dataset(f"nsynth-{target}", "clip", "multiclass", tuple(order), tuple(items), root,
                   f"NSynth {target}", str(root))


def _loaders() -> dict[str, Callable[..., Dataset]]:
    from benchmark.data.public_speech import load_librispeech, load_timit

    return {
        "gtzan": load_gtzan, "magnatagatune": load_magnatagatune, "nsynth": load_nsynth,
        "nsynth-pitch": lambda root, seed=0: load_nsynth(root, seed, target="pitch"),
        "librispeech": load_librispeech, "timit": load_timit,
    }


LOADERS = _loaders()
