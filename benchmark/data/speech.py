"""Synthetic speech with exact phone timings: sentences from Debian `fortunes`, spoken by
Festival voices, phones folded onto the 39 CMUdict phones plus silence."""

import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from benchmark.atomic import atomic_write
from benchmark.audio import resample, to_mono
from benchmark.data.common import SR_HZ, require_debian_file, require_program, write_audio
from benchmark.errors import MelbenchError

FORTUNES_DIR = "/usr/share/games/fortunes"
# Fortune files with prose sentences; code (perl, linux), ASCII art and the offensive set are left out.
FORTUNE_FILES = (
    "education", "food", "fortunes", "goedel", "humorists", "kids", "law", "literature", "love", "magic",
    "medicine", "miscellaneous", "news", "paradoxum", "people", "pets", "platitudes", "politics",
    "pratchett", "riddles", "science", "sports", "wisdom", "work",
)
MIN_WORDS, MAX_WORDS = 4, 25

CMU_PHONES = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY",
    "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y",
    "Z", "ZH",
)
PHONE_CLASSES = (*CMU_PHONES, "sil")
# Festival's "radio" phones that are not CMUdict phones, folded as CMUdict transcribes them.
# The flap dx is folded to T: in US English it is mostly an intervocalic /t/.
_FOLD = {"ax": "AH", "axr": "ER", "ix": "IH", "dx": "T", "el": "L", "em": "M", "en": "N",
         "pau": "sil", "h#": "sil", "brth": "sil"}


@dataclass(frozen=True)
class Voice:
    """A Festival voice: its Scheme selector and the Debian package that provides it."""

    name: str
    scheme: str
    package: str
    path: str


VOICES = {
    "kal": Voice("kal", "voice_kal_diphone", "festvox-kallpc16k", "/usr/share/festival/voices/english/kal_diphone"),
    "ked": Voice("ked", "voice_ked_diphone", "festvox-kdlpc16k", "/usr/share/festival/voices/english/ked_diphone"),
    "slt": Voice("slt", "voice_cmu_us_slt_arctic_hts", "festvox-us-slt-hts",
                 "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts"),
}


def fold_phone(phone: str) -> str:
    """Map a Festival phone onto the 39 CMUdict phones or "sil".

    Raises:
        MelbenchError: a phone outside the known set.
    """
    upper = phone.upper()
    if upper in CMU_PHONES:
        return upper
    if phone in _FOLD:
        return _FOLD[phone]
    raise MelbenchError(f"unknown Festival phone {phone!r}")


def sentence_id(text: str) -> str:
    """Stable id of a sentence (its normalised text), shared by every voice that speaks it."""
    return hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()[:12]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CLEAN = re.compile(r"^[A-Z][A-Za-z ,;'\-]*[A-Za-z][.!?]$")
_DIALOGUE = re.compile(r"^\s*[A-Z][\w .]{0,20}:\s")


def fortune_sentences() -> list[str]:
    """Usable sentences from the fortune files, deduplicated, in a fixed order.

    A fortune is skipped when it looks like dialogue ("Name: ...") or is indented like verse
    or code; attribution lines ("-- Author") are dropped; sentences keep only letters and light
    punctuation (so Festival reads them as written) and 4-25 words.

    Returns:
        Sentences sorted by their id (order independent of file order).

    Raises:
        MelbenchError: the `fortunes` package is not installed.
    """
    folder = require_debian_file(FORTUNES_DIR, "fortunes")
    seen: dict[str, str] = {}
    for name in FORTUNE_FILES:
        path = folder / name
        if not path.exists():
            continue
        for fortune in path.read_text(encoding="latin-1").split("\n%\n"):
            lines = [ln for ln in fortune.splitlines() if not ln.strip().startswith("--")]
            if any(_DIALOGUE.match(ln) for ln in lines) or any(ln.startswith(("\t", "  ")) for ln in lines):
                continue
            for sentence in _SENTENCE_END.split(" ".join(" ".join(lines).split())):
                if _CLEAN.match(sentence) and MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
                    seen.setdefault(sentence_id(sentence), sentence)
    return [seen[k] for k in sorted(seen)]


def synthesise(voice: str, texts: dict[str, str], out_dir: Path) -> int:
    """Speak `texts` with one Festival process; write `<id>.flac` (16 kHz) and `<id>.json`
    (phone segments `[[start_s, end_s, phone], ...]`, written last) into `out_dir`.

    Args:
        voice: key of `VOICES`.
        texts: utterance id -> sentence.
        out_dir: destination folder.

    Returns:
        How many utterances succeeded.

    Raises:
        MelbenchError: festival or the voice is not installed.
    """
    require_program("festival", "festival")
    spec = VOICES[voice]
    require_debian_file(spec.path, spec.package)
    done = 0
    with tempfile.TemporaryDirectory(prefix="melbench-festival-") as tmp:
        lines = [f"({spec.scheme})"]
        for uid, text in texts.items():
            safe = text.replace("\\", " ").replace('"', " ")
            lines.append(f'(set! utt (utt.synth (Utterance Text "{safe}")))')
            lines.append(f'(utt.save.segs utt "{tmp}/{uid}.segs")')
            lines.append(f"(utt.save.wave utt \"{tmp}/{uid}.wav\" 'riff)")
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", str(script)], check=False, capture_output=True, timeout=3600)
        for uid in texts:
            wav, segs = Path(tmp) / f"{uid}.wav", Path(tmp) / f"{uid}.segs"
            if not (wav.exists() and segs.exists()):
                continue  # festival failed on this sentence: the caller counts it as dropped
            data, sr_hz = sf.read(str(wav), dtype="float32", always_2d=True)
            wave = resample(to_mono(data), int(sr_hz), SR_HZ)
            try:
                segments = read_segs(segs, len(wave) / SR_HZ)
            except MelbenchError:
                continue
            write_audio(out_dir / f"{uid}.flac", wave)
            with atomic_write(out_dir / f"{uid}.json", "w") as f:
                json.dump(segments, f)
            done += 1
    return done


def read_segs(path: Path, dur_s: float) -> list[list]:
    """Parse a Festival `.segs` file (xlabel: header, `#`, then `end_time colour phone`).

    Args:
        path: the file.
        dur_s: the audio's duration; segments are clipped to it.

    Returns:
        `[[start_s, end_s, folded_phone], ...]`, contiguous from 0.
    """
    body = path.read_text().split("#", 1)[1].split("\n")
    segments, start_s = [], 0.0
    for line in body:
        parts = line.split()
        if len(parts) < 3:
            continue
        end_s = min(float(parts[0]), dur_s)
        if end_s > start_s:
            segments.append([round(start_s, 4), round(end_s, 4), fold_phone(parts[2])])
        start_s = max(start_s, end_s)
    return segments
