"""Scores from the music21 corpus: seeded piece selection, conversion to note events (cached,
since parsing is the slow step), tags and a 24-class key label.

Key labelling rule (SOURCES.md section 2): a notated key is trusted only where its mode was
written: a major/minor key in MusicXML, or a minor key in ABC (ABC without a mode reads as
major, and Essen's "major" only means no mode was given). Otherwise the tonic comes from the
key signature and the mode from music21's key analysis. Modal keys (dorian, ...) get no label,
and the modal early-music collections (palestrina, trecento) are left out of `key`.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write
from benchmark.data.common import require_module, unit_hash

# Collection (genre label) -> (music21 corpus folder, era tag).
COLLECTIONS = {
    "essen": ("essenFolksong", "folk"),
    "oneills": ("oneills1850", "folk"),
    "aird": ("airdsAirs", "folk"),
    "ryan": ("ryansMammoth", "folk"),
    "bach": ("bach", "baroque"),
    "palestrina": ("palestrina", "renaissance"),
    "monteverdi": ("monteverdi", "renaissance"),
    "trecento": ("trecento", "medieval"),
}
NO_KEY_COLLECTIONS = ("palestrina", "trecento")
TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KEY_CLASSES = tuple(f"{t} {m}" for m in ("major", "minor") for t in TONICS)
DANCES = ("reel", "jig", "hornpipe", "polka", "march", "waltz", "strathspey", "slide", "schottische")
MAX_PIECE_S = 120.0  # long pieces are cut: a few ABC tunes would otherwise run for many minutes


@dataclass(frozen=True)
class Piece:
    """A corpus entry: `number` picks one tune from a multi-tune ABC file."""

    collection: str
    source_path: str
    number: str | None

    @property
    def key(self) -> str:
        """Stable id, used as the split group and the pretraining-disjointness key."""
        return f"piece:{self.source_path}#{self.number or ''}"


def piece_hash(piece: Piece) -> str:
    """Short stable hex id of a piece, for file names."""
    return hashlib.sha1(piece.key.encode()).hexdigest()[:12]


def corpus_pieces(seed: int) -> dict[str, list[Piece]]:
    """Every piece of the chosen collections, each list in a seeded order.

    Raises:
        MelbenchError: music21 is not installed.
    """
    require_module("music21", "music21")
    from music21 import corpus

    folders = {folder: name for name, (folder, _) in COLLECTIONS.items()}
    out: dict[str, list[Piece]] = {name: [] for name in COLLECTIONS}
    bundle = corpus.corpora.CoreCorpus().metadataBundle
    # Iterating the bundle itself builds a sorted copy and takes ~35 s (measured); its
    # underlying dict holds the same entries and iterates in milliseconds.
    entries = getattr(bundle, "_metadataEntries", None)
    for entry in entries.values() if entries is not None else bundle:
        top = str(entry.sourcePath).split("/")[0]
        if top in folders:
            number = str(entry.number) if entry.number else None
            out[folders[top]].append(Piece(folders[top], str(entry.sourcePath), number))
    return {k: sorted(set(v), key=lambda p: unit_hash(seed, "piece-order", p.key)) for k, v in out.items()}


def key_label(score: Any, file_format: str) -> str | None:
    """The 24-class key label by the module's rule, or None (modal or no key signature)."""
    from music21 import key as m21key

    signature = score.recurse().getElementsByClass("KeySignature").first()
    if signature is None:
        return None
    mode = getattr(signature, "mode", None)
    written = isinstance(signature, m21key.Key) and (mode == "minor" or (mode == "major" and file_format != "abc"))
    if written:
        tonic = signature.tonic
    else:
        if mode not in (None, "major", "minor"):
            return None  # a written church mode: not one of the 24 classes
        analysed = score.analyze("key").mode
        if analysed not in ("major", "minor"):
            return None
        tonic, mode = signature.asKey(analysed).tonic, analysed
    return f"{TONICS[tonic.pitchClass]} {mode}"


def _tags(piece: Piece, score: Any, n_parts: int, meter: str | None, title: str) -> list[str]:
    tags = [f"collection:{piece.collection}", f"era:{COLLECTIONS[piece.collection][1]}"]
    tags.append("parts:1" if n_parts == 1 else "parts:2-3" if n_parts <= 3 else "parts:4+")
    if meter:
        tags.append(f"meter:{meter}")
    words = set(re.findall(r"[a-z]+", title.lower()))
    tags += [f"dance:{d}" for d in DANCES if d in words or d + "s" in words]
    region = getattr(score.metadata, "localeOfComposition", None) if score.metadata else None
    if region:
        tags.append(f"region:{str(region).split(',')[0].strip().lower()}")
    return tags


def convert(piece: Piece) -> dict[str, Any]:
    """Parse one piece into note events (quarter lengths), tempo, tags and key.

    Returns:
        {"events": [[onset_q, offset_q, part, midi], ...], "qpm": float | None, "tags": [...],
        "key": str | None, "n_parts": int, "title": str}, or {"failed": reason}.
    """
    from music21 import corpus

    try:
        score = corpus.parse(piece.source_path, number=int(piece.number) if piece.number else None)
        parts = list(score.parts) or [score]
        events = []
        for k, part in enumerate(parts):
            for n in part.flatten().notes:
                if n.duration.isGrace or n.quarterLength <= 0:
                    continue
                on_q = float(n.offset)
                events += [[on_q, on_q + float(n.quarterLength), k, int(p.midi)] for p in n.pitches]
        mark = score.recurse().getElementsByClass("MetronomeMark").first()
        signature = score.recurse().getElementsByClass("TimeSignature").first()
        title = (score.metadata.title if score.metadata else None) or ""
        file_format = "abc" if piece.source_path.endswith(".abc") else "other"
        meter = signature.ratioString if signature else None
        return {
            "events": events, "qpm": float(mark.getQuarterBPM()) if mark and mark.number else None,
            "tags": _tags(piece, score, len(parts), meter, title), "n_parts": len(parts), "title": title,
            "key": None if piece.collection in NO_KEY_COLLECTIONS else key_label(score, file_format),
        }
    except Exception as err:  # music21 raises many types on odd scores; one bad piece must not stop the build
        return {"failed": f"{type(err).__name__}: {err}"[:200]}


def converted(piece: Piece, cache: Path) -> dict[str, Any]:
    """`convert(piece)`, cached as JSON under `cache` (failures too, so they are not retried)."""
    path = cache / "scores" / f"{piece.collection}-{piece_hash(piece)}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = convert(piece)
    with atomic_write(path, "w") as f:
        json.dump(result, f)
    return result
