"""Labelled datasets: one manifest format for embedded, public and users' own data.

A dataset is a folder with

    dataset.json     {"name", "level": "clip"|"frame", "labels": "multiclass"|"multilabel",
                      "classes": [...], "description", "source"}
    manifest.jsonl   one item per line:
                     {"id": str, "path": audio file (relative to this folder or absolute),
                      "split": "train"|"valid"|"test", "group": str (recording / piece /
                      sentence: never on both sides of a split), "duration_s": float,
                      "labels": [str, ...]                      (clip level; one for multiclass)
                      "segments": [[start_s, end_s, label], ...] (frame level)
                      ...any extra fields (pitch, voice, soundfont, ...) kept in `extra`}
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import MelbenchError

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Item:
    """One labelled audio item."""

    id: str
    path: Path
    split: str
    group: str
    duration_s: float
    labels: tuple[str, ...] = ()
    segments: tuple[tuple[float, float, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Dataset:
    """A dataset's description and items."""

    name: str
    level: str
    labels: str
    classes: tuple[str, ...]
    items: tuple[Item, ...]
    root: Path
    description: str = ""
    source: str = ""

    def split(self, name: str) -> list[Item]:
        """Items of one split ("train", "valid" or "test")."""
        return [item for item in self.items if item.split == name]


_ITEM_KEYS = {"id", "path", "split", "group", "duration_s", "labels", "segments"}


def item_from_record(record: dict[str, Any], root: Path, where: str) -> Item:
    """Validate one manifest record and make an `Item`.

    Args:
        record: the parsed JSON object.
        root: folder that relative paths resolve against.
        where: "file:line" for error messages.

    Returns:
        The item.

    Raises:
        MelbenchError: a required field is missing or malformed.
    """
    for key in ("id", "path", "split"):
        if key not in record:
            raise MelbenchError(f"{where}: missing field {key!r}")
    if record["split"] not in SPLITS:
        raise MelbenchError(f"{where}: split must be one of {', '.join(SPLITS)}, got {record['split']!r}")
    path = Path(record["path"])
    return Item(
        id=str(record["id"]),
        path=path if path.is_absolute() else root / path,
        split=record["split"],
        group=str(record.get("group", record["id"])),
        duration_s=float(record.get("duration_s", 0.0)),
        labels=tuple(str(x) for x in record.get("labels", ())),
        segments=tuple((float(s), float(e), str(lab)) for s, e, lab in record.get("segments", ())),
        extra={k: v for k, v in record.items() if k not in _ITEM_KEYS},
    )


def load_dataset_dir(root: str | Path) -> Dataset:
    """Read a dataset folder (dataset.json + manifest.jsonl).

    Args:
        root: the folder.

    Returns:
        The dataset.

    Raises:
        MelbenchError: missing files or malformed records (naming file and line).
    """
    root = Path(root)
    meta_file, manifest = root / "dataset.json", root / "manifest.jsonl"
    for f in (meta_file, manifest):
        if not f.exists():
            raise MelbenchError(f"{f}: missing (is the dataset built? try `melbench data build`)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MelbenchError(f"{meta_file}: not valid JSON ({err})") from None
    items = []
    with open(manifest, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise MelbenchError(f"{manifest}:{n}: not valid JSON ({err.msg})") from None
            items.append(item_from_record(record, root, f"{manifest}:{n}"))
    return Dataset(
        name=meta.get("name", root.name),
        level=meta["level"],
        labels=meta["labels"],
        classes=tuple(meta["classes"]),
        items=tuple(items),
        root=root,
        description=meta.get("description", ""),
        source=meta.get("source", ""),
    )
