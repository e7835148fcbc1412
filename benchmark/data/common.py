"""Shared pieces of the data builders: build context, seeded hashing, atomic audio and
manifest writes, done-markers, and checks for the packages a builder needs."""

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile as sf

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError
from benchmark.home import melbench_home

# The embedded datasets `melbench data build` makes (one place: build, `load_dataset`, the CLI).
DATASETS = ("phones", "instrument", "pitch", "tagging", "key", "genre")

SR_HZ = 16000  # every embedded audio file is 16 kHz mono 16-bit FLAC


@dataclass(frozen=True)
class BuildContext:
    """Where and how big to build.

    Attributes:
        root: `$MELBENCH_HOME/data/full` or `.../quick`.
        quick: small sizes for tests and CI.
        seed: every random choice derives from it (via `unit_hash`), so builds are repeatable.
    """

    root: Path
    quick: bool
    seed: int = 0

    @property
    def audio(self) -> Path:
        """Folder of rendered audio shared by datasets and corpora."""
        return self.root / "audio"

    @property
    def cache(self) -> Path:
        """Folder of intermediate results (converted scores, downloaded packages)."""
        return self.root / "cache"


def data_root(quick: bool, home: Path | None = None) -> Path:
    """`$MELBENCH_HOME/data/quick` or `.../full`.

    Args:
        quick: the quick build.
        home: overrides `$MELBENCH_HOME` (tests).

    Returns:
        The folder (not created here).
    """
    return (home or melbench_home()) / "data" / ("quick" if quick else "full")


def unit_hash(seed: int, *key: object) -> float:
    """A number in [0, 1) fixed by `seed` and `key`: order-independent seeded randomness.

    Assigning splits by hash (not by shuffling a list) keeps an item's split stable when
    other items are added or dropped, which is what makes quick and full builds consistent.

    Args:
        seed: the build seed.
        key: anything with a stable `str`.

    Returns:
        A float in [0, 1).
    """
    digest = hashlib.sha256(repr((seed, *map(str, key))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def seeded_rng(seed: int, *key: object) -> np.random.Generator:
    """A numpy generator fixed by `seed` and `key`."""
    return np.random.default_rng(int(unit_hash(seed, *key) * 2**63))


def write_audio(path: Path, wave: np.ndarray, sr_hz: int = SR_HZ) -> None:
    """Write mono float audio as 16-bit FLAC, atomically.

    Args:
        path: destination (`.flac`).
        wave: `(n_samples,)` float samples in [-1, 1] (clipped).
        sr_hz: sample rate.
    """
    with atomic_write(path) as f:
        sf.write(f, np.clip(wave, -1.0, 1.0), sr_hz, format="FLAC", subtype="PCM_16")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically."""
    with atomic_write(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def write_dataset(folder: Path, meta: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Write `dataset.json` and `manifest.jsonl` (the form `load_dataset_dir` reads).

    Args:
        folder: the dataset folder.
        meta: name, level, labels, classes, description, source.
        records: manifest records; paths relative to `folder`.
    """
    write_jsonl(folder / "manifest.jsonl", records)
    with atomic_write(folder / "dataset.json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


def is_done(folder: Path, recipe: dict[str, Any]) -> bool:
    """Whether `folder` was completed with exactly this recipe (sizes, seed, version)."""
    marker = folder / ".done"
    return marker.exists() and json.loads(marker.read_text()) == recipe


def mark_done(folder: Path, recipe: dict[str, Any]) -> None:
    """Record that `folder` is complete for `recipe`; written last, so a crash leaves no marker."""
    with atomic_write(folder / ".done", "w") as f:
        json.dump(recipe, f, sort_keys=True)


def rel(path: Path, start: Path) -> str:
    """`path` relative to folder `start` (may climb with `..`), POSIX style."""
    return Path(os.path.relpath(path, start)).as_posix()


def require_debian_file(path: str, package: str) -> Path:
    """Return `path`, or say which Debian package provides it and how to install it.

    Raises:
        MelbenchError: the file is absent.
    """
    if not Path(path).exists():
        raise MelbenchError(
            f"{path} not found: install the Debian package {package} "
            f"(`sudo apt-get install {package}` or scripts/setup.sh)"
        )
    return Path(path)


def require_program(name: str, package: str) -> str:
    """Return the path of executable `name`, or say which Debian package provides it."""
    found = shutil.which(name)
    if not found:
        raise MelbenchError(f"`{name}` not found: install the Debian package {package} (`sudo apt-get install {package}`)")
    return found


def require_module(module: str, pip_name: str) -> None:
    """Raise a one-line install hint when Python module `module` is missing."""
    if importlib.util.find_spec(module) is None:
        raise MelbenchError(f"Python package {pip_name} is missing: `pip install {pip_name}` (or scripts/setup.sh)")
