"""Feature cache: each (upstream + options + checkpoint, audio item) is extracted once.

On-disk format, under `$MELBENCH_HOME/features/`:

    <upstream>/<key>/key.json              the full cache key (upstream, options,
                                           checkpoint sha256, layers, format version)
    <upstream>/<key>/<ii>/<item>.npy       float32 features of one item: (n_frames, dim),
                                           or (num_layers, n_frames, dim) with layers=True;
                                           pooled: (2 * dim,) or (num_layers, 2 * dim)

`<key>` is the first 16 hex digits of the sha256 of key.json's canonical JSON; `<item>` is
the sha256 of the audio file's bytes (so renamed copies hit, edited files miss) and `<ii>`
its first two digits. Files are written to a temporary name and renamed, so a kill never
leaves half an entry; an unreadable entry counts as a miss and is rewritten. `.npy` files
are read memory-mapped.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError
from benchmark.home import melbench_home

CACHE_FORMAT = 1


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks.

    Args:
        path: the file.
        chunk_bytes: read size.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, sorted by name).

    Args:
        path: a checkpoint file or folder.

    Returns:
        The hex digest.
    """
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def cache_key(upstream: str, options: dict[str, Any], layers: bool, pool: bool = False) -> dict[str, Any]:
    """The record that identifies one upstream configuration.

    Args:
        upstream: upstream name.
        options: its `load` options; a `checkpoint` path (file or folder) is replaced by its
            sha256, and so is a `weights` path (the `hear` adapter's weights file).
        layers: whether every hidden layer is stored.
        pool: whether frames are stored pooled (mean and std over time) instead of per frame.

    Returns:
        A JSON-serialisable dict.
    """
    opts = {k: str(v) if isinstance(v, Path) else v for k, v in sorted(options.items())}
    ckpt = opts.pop("checkpoint", None)
    if opts.get("weights"):
        opts["weights_sha256"] = path_sha256(opts["weights"])
    return {
        "format": CACHE_FORMAT,
        "upstream": upstream,
        "options": opts,
        "checkpoint_sha256": path_sha256(ckpt) if ckpt else None,
        "layers": layers,
        "pool": "mean+std" if pool else None,
    }


class FeatureCache:
    """Features of one upstream configuration, keyed by item.

    Args:
        key: the record from `cache_key`.
        root: cache root (default `$MELBENCH_HOME/features`).
    """

    def __init__(self, key: dict[str, Any], root: Path | None = None):
        self.key = key
        canonical = json.dumps(key, sort_keys=True, separators=(",", ":"))
        self.key_hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        self.dir = (root or melbench_home() / "features") / key["upstream"] / self.key_hash
        key_file = self.dir / "key.json"
        if not key_file.exists():
            with atomic_write(key_file, "w") as f:
                json.dump(key, f, indent=2, sort_keys=True)

    def path(self, item: str) -> Path:
        """Where an item's features live."""
        return self.dir / item[:2] / f"{item}.npy"

    def get(self, item: str) -> np.ndarray | None:
        """Features of `item`, memory-mapped, or None if absent or unreadable."""
        path = self.path(item)
        if not path.exists():
            return None
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None

    def put(self, item: str, features: np.ndarray) -> Path:
        """Store an item's features atomically.

        Args:
            item: the item id (sha256 of the audio file).
            features: float32 array.

        Returns:
            The file written.
        """
        path = self.path(item)
        try:
            with atomic_write(path) as f:
                np.save(f, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
        except OSError as err:  # e.g. a full disk: the temporary file is gone, the cache unchanged
            raise MelbenchError(f"{path}: cannot write features ({err.strerror or err}); "
                                "the cache is unchanged, free space and run again") from None
        return path
