"""Bring-your-own datasets: a CSV (or TSV) manifest written by a user.

Clip level:  `path,label[,split][,group]`; several labels per clip separated by `;` make the
             dataset multi-label.
Frame level: `path,start_s,end_s,label[,split][,group]` (one row per segment), or
             `path,annotation[,split][,group]` where `annotation` is a Praat TextGrid (long text
             format; the tier named "phones", else the first interval tier) or a `.lab` file
             (`start end label` per line, seconds; HTK 100 ns units when all times are integers).
An optional `name` column names the dataset (the same on every row); without it the dataset is
named after the manifest's folder. Relative paths resolve against the manifest's folder. Rows without a split are split by
`grouped_stratified_split` (group defaults to the audio path). Every bad row is reported as
"file:line: problem" and left out; the rest is kept.
"""

import csv
from collections import Counter
import re
from pathlib import Path

import soundfile as sf

from benchmark.data.manifest import SPLITS, Dataset, Item
from benchmark.data.splits import grouped_stratified_split
from benchmark.errors import MelbenchError


def read_textgrid(path: Path) -> list[tuple[float, float, str]]:
    """Intervals of a long-format TextGrid (tier "phones" if present, else the first);
    empty interval texts become "sil"."""
    text = path.read_text(encoding="utf-8", errors="replace")
    tiers = re.split(r"\n\s*item \[\d+\]:", text)[1:]
    if not tiers:
        raise MelbenchError(f"{path}: no tiers found (expected a long-format TextGrid)")
    named = [t for t in tiers if re.search(r'name = "phones?"', t)]
    tier = (named or tiers)[0]
    out = []
    for xmin, xmax, label in re.findall(r'xmin = ([\d.]+)\s*xmax = ([\d.]+)\s*text = "(.*?)"', tier):
        out.append((float(xmin), float(xmax), label.strip() or "sil"))
    if not out:
        raise MelbenchError(f"{path}: no intervals found")
    return out


def read_lab(path: Path) -> list[tuple[float, float, str]]:
    """Segments of a `.lab` file (seconds, or HTK 100 ns units when every time is an integer)."""
    rows = [line.split(None, 2) for line in path.read_text().splitlines() if line.strip()]
    try:
        times = [(r[0], r[1]) for r in rows]
        htk = all(re.fullmatch(r"\d+", t) for pair in times for t in pair)
        per_s = 1e7 if htk else 1.0
        return [(float(r[0]) / per_s, float(r[1]) / per_s, r[2].strip()) for r in rows]
    except (IndexError, ValueError):
        raise MelbenchError(f"{path}: expected lines `start end label`") from None


def _read_annotation(path: Path) -> list[tuple[float, float, str]]:
    if path.suffix.lower() == ".textgrid":
        return read_textgrid(path)
    if path.suffix.lower() == ".lab":
        return read_lab(path)
    raise MelbenchError(f"{path}: annotation must be a .TextGrid or .lab file")


def load_manifest(manifest: Path, seed: int = 0) -> tuple[Dataset, list[str]]:
    """Read a user manifest into a `Dataset`.

    Args:
        manifest: the CSV/TSV file.
        seed: seed of the split made for rows without one.

    Returns:
        (dataset, problems): one "file:line: problem" string per dropped row.

    Raises:
        MelbenchError: the header is unusable (no `path`, no label column) or no row is usable.
    """
    root = manifest.parent
    with open(manifest, newline="", encoding="utf-8") as f:
        dialect = "excel-tab" if manifest.suffix.lower() in (".tsv", ".tab") else "excel"
        reader = csv.DictReader(f, dialect=dialect)
        columns = set(reader.fieldnames or [])
        rows = [(n, row) for n, row in enumerate(reader, 2)]
    if "path" not in columns:
        raise MelbenchError(f"{manifest}:1: no `path` column (found: {', '.join(sorted(columns)) or 'none'})")
    frame_rows = {"start_s", "end_s", "label"} <= columns
    if not (frame_rows or "annotation" in columns or "label" in columns):
        raise MelbenchError(f"{manifest}:1: no label column: expected `label`, `start_s,end_s,label` or "
                            f"`annotation` (found: {', '.join(sorted(columns))})")
    level = "frame" if frame_rows or "annotation" in columns else "clip"
    names = sorted({(row.get("name") or "").strip() for _, row in rows} - {""}) if "name" in columns else []
    if len(names) > 1:
        raise MelbenchError(f"{manifest}: the `name` column names one dataset, found {', '.join(names)}")
    name = names[0] if names else manifest.resolve().parent.name
    problems: list[str] = []
    entries: dict[str, dict] = {}  # audio path -> fields, in manifest order
    durations: dict[Path, float] = {}
    for n, row in rows:
        where = f"{manifest}:{n}"
        try:
            raw = (row.get("path") or "").strip()
            if not raw:
                raise MelbenchError("empty path")
            audio = Path(raw) if Path(raw).is_absolute() else root / raw
            if audio not in durations:
                if not audio.exists():
                    raise MelbenchError(f"audio file {raw} not found")
                try:
                    durations[audio] = sf.info(str(audio)).duration
                except (RuntimeError, sf.LibsndfileError) as err:
                    raise MelbenchError(f"cannot read audio {raw} ({err})") from None
            split = (row.get("split") or "").strip()
            if split and split not in SPLITS:
                raise MelbenchError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
            entry = entries.setdefault(raw, {"path": audio, "split": split, "segments": [], "labels": [],
                                             "group": (row.get("group") or "").strip() or raw, "line": n})
            if frame_rows:
                start_s, end_s = float(row["start_s"]), float(row["end_s"])
                label = (row.get("label") or "").strip()
                if not label or not 0 <= start_s < end_s:
                    raise MelbenchError(f"bad segment {start_s}-{end_s} {label!r}")
                entry["segments"].append((start_s, end_s, label))
            elif level == "frame":
                ann = Path(row["annotation"].strip())
                entry["segments"] = _read_annotation(ann if ann.is_absolute() else root / ann)
            else:
                labels = [lab.strip() for lab in (row.get("label") or "").split(";") if lab.strip()]
                if not labels:
                    raise MelbenchError("empty label")
                entry["labels"] = labels
        except (MelbenchError, ValueError) as err:
            problems.append(f"{where}: {err}")
    # a file whose every row was bad has nothing left to label
    entries = {raw: e for raw, e in entries.items() if e["labels"] or e["segments"]}
    if not entries:
        raise MelbenchError(f"{manifest}: no usable rows ({len(problems)} bad)")
    return _dataset(manifest, name, level, entries, durations, seed), problems


def _dataset(manifest: Path, name: str, level: str, entries: dict[str, dict], durations: dict[Path, float],
             seed: int) -> Dataset:
    """Make splits where missing and assemble the `Dataset`."""
    unsplit = [e for e in entries.values() if not e["split"]]
    if unsplit:
        # stratify on each item's first label (clip) or most frequent segment label (frame)
        strata = [e["labels"][0] if e["labels"] else Counter(s[2] for s in e["segments"]).most_common(1)[0][0]
                  for e in unsplit]
        assigned = grouped_stratified_split([e["group"] for e in unsplit], strata, seed)
        for e in unsplit:
            e["split"] = assigned[e["group"]]
    classes = sorted({lab for e in entries.values() for lab in e["labels"] + [s[2] for s in e["segments"]]})
    multilabel = any(len(e["labels"]) > 1 for e in entries.values())
    items = tuple(
        Item(id=raw, path=e["path"], split=e["split"], group=e["group"], duration_s=durations[e["path"]],
             labels=tuple(e["labels"]), segments=tuple(sorted(e["segments"])))
        for raw, e in entries.items()
    )
    return Dataset(name=name, level=level, labels="multilabel" if multilabel else "multiclass",
                   classes=tuple(classes), items=items, root=manifest.parent, source=str(manifest))
