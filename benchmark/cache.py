"""Feature cache: each (upstream + options + checkpoint, audio item) is extracted once.

On-disk format, under `$MELBENCH_HOME/features/`:

    <upstream>/<key>/key.json              the full cache key (upstream, options, code and
                                           checkpoint fingerprints, layers, format version)
    <upstream>/<key>/<ii>/<item>.npy       float32 features of one item: (n_frames, dim),
                                           or (num_layers, n_frames, dim) with layers=True;
                                           pooled: (2 * dim,) or (num_layers, 2 * dim)

`<key>` is the first 16 hex digits of the sha256 of key.json's canonical JSON; `<item>` is
the sha256 of the audio file's bytes (so renamed copies hit, edited files miss) and `<ii>`
its first two digits. The code fingerprint (`benchmark.fingerprints.code_fingerprint`) covers
the upstream's module and the project modules it imports, so a fix in an upstream or one of
its helpers is a miss. Files are written to a temporary name and renamed, so a kill never
leaves half an entry. An entry is checked (whole, finite) when written and again only when its
size or modification time changed; an unreadable or non-finite entry counts as a miss and is
rewritten. `.npy` files are read memory-mapped.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError
from benchmark.fingerprints import checkpoint_sha256, code_fingerprint, is_verified, mark_verified, path_sha256
from benchmark.home import melbench_home
from benchmark.registry import load_module, module_options

CACHE_FORMAT = 2  # 2: the key holds the upstream's code fingerprint


def cache_key(upstream: str, options: dict[str, Any], layers: bool, pool: bool = False) -> dict[str, Any]:
    """The record that identifies one upstream configuration.

    Args:
        upstream: upstream name.
        options: its `load` options; a `checkpoint` path (file or folder) is replaced by
            `checkpoint_sha256`, and each option the module names in `FILE_OPTIONS` (the `hear` adapter's
            `weights`) gets its content's sha256 beside it. The upstream's code fingerprint is
            computed from its name and these options.
        layers: whether every hidden layer is stored.
        pool: whether frames are stored pooled (mean and std over time) instead of per frame.

    Returns:
        A JSON-serialisable dict.
    """
    opts = {k: str(v) if isinstance(v, Path) else v for k, v in sorted(options.items())}
    opts.pop("checkpoint", None)
    # a `NAME:ARGUMENT` name may fill the checkpoint (`hf:FOLDER`): hash what `load` will get
    module = load_module(upstream)
    given = module_options(upstream, module, options)
    ckpt = given.get("checkpoint")
    for name in getattr(module, "FILE_OPTIONS", ()):
        if given.get(name):
            opts[f"{name}_sha256"] = path_sha256(given[name])
    return {
        "format": CACHE_FORMAT,
        "upstream": upstream,
        "options": opts,
        "code_sha256": code_fingerprint(upstream, options),
        "checkpoint_sha256": checkpoint_sha256(ckpt) if ckpt else None,
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
        """Features of `item`, memory-mapped, or None if absent, unreadable or not finite.

        An entry already checked at its present size and modification time is not read to
        check it again; any other is read whole once.
        """
        path = self.path(item)
        if not path.exists():
            return None
        try:
            feats = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None
        if not is_verified(path):
            if not np.isfinite(feats).all():  # damaged on disk: never probe on it
                tqdm.write(f"melbench: warning: {path} holds NaN/Inf; recomputing")
                return None
            mark_verified(path)
        return feats

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
        mark_verified(path)  # the caller passes finite features only (`benchmark.extract`)
        return path
