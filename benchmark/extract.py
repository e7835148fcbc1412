"""Extract features for audio files through the cache, skipping (and recording) bad files."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from benchmark import memory
from benchmark.audio import load_audio
from benchmark.cache import FeatureCache, cache_key
from benchmark.errors import MelbenchError
from benchmark.fingerprints import content_sha256
from benchmark.registry import load_upstream
from benchmark.upstream import batch_extract, extract_chunked, pad_batch

BATCH_SIZE = 16  # clips per padded extract_batch call
MAX_BATCH_CLIP_S = 60.0  # longer clips (or any beyond an upstream's max_input_s) go one by one


@dataclass
class ItemResult:
    """One extracted (or cache-hit) file."""

    path: Path
    shape: tuple[int, ...]
    duration_s: float
    cached: bool
    feature_path: Path


@dataclass
class ExtractReport:
    """What `extract_files` did: per-file results, skipped files with reasons, timings."""

    items: list[ItemResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frame_rate: float = 0.0  # the upstream's frames per second
    extract_s: float = 0.0  # wall time spent in upstream.extract (cache misses only)
    extracted_audio_s: float = 0.0  # audio duration behind those misses
    provenance: dict | None = None  # the upstream's optional `provenance` fact

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio extracted per wall-clock second (misses only)."""
        return self.extracted_audio_s / self.extract_s if self.extract_s > 0 else float("nan")


def _content_id(path: Path) -> str:
    """The file's sha256 (memoised), with one-line errors for missing or unreadable files."""
    try:
        return content_sha256(path)
    except FileNotFoundError:
        raise MelbenchError(f"{path}: no such file") from None
    except PermissionError:
        raise MelbenchError(f"{path}: cannot read (permission denied)") from None
    except OSError as err:
        raise MelbenchError(f"{path}: cannot read ({err.strerror})") from None


def pool_mean_std(feats: np.ndarray) -> np.ndarray:
    """Mean and std over frames, concatenated (per layer when there are layers).

    Args:
        feats: `(frames, dim)` or `(layers, frames, dim)`.

    Returns:
        `(2 * dim,)` or `(layers, 2 * dim)` float32; zeros for a clip with no frames.
    """
    feats = np.asarray(feats, dtype=np.float32)
    if feats.shape[-2] == 0:
        return np.zeros((*feats.shape[:-2], 2 * feats.shape[-1]), np.float32)
    return np.concatenate([feats.mean(-2), feats.std(-2)], axis=-1)


def features_of(upstream: Any, wave: np.ndarray, layers: bool = False) -> np.ndarray:
    """Run `upstream.extract` on one clip (in chunks if it is long) and return float32 numpy features.

    Args:
        upstream: a loaded upstream.
        wave: `(n_samples,)` float32 at the upstream's sample rate.
        layers: return every hidden layer.

    Returns:
        `(n_frames, dim)` or `(num_layers, n_frames, dim)` float32.
    """
    with torch.inference_mode():
        out = extract_chunked(upstream, torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), layers=layers)
    return out.detach().to("cpu", torch.float32).numpy()


def _extract_batch(upstream: Any, waves: list[np.ndarray], layers: bool) -> list[np.ndarray]:
    """Features of several clips: one padded `batch_extract` call, or one by one for long clips.

    Padding never changes a result: the contract (checked by `melbench check`) requires the
    batched path to give each clip's own frames.
    """
    long_s = getattr(upstream, "max_input_s", None) or MAX_BATCH_CLIP_S
    if len(waves) == 1 or max(len(w) for w in waves) > long_s * upstream.sample_rate:
        return [features_of(upstream, w, layers) for w in waves]
    padded, lengths = pad_batch([torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in waves])
    with torch.inference_mode():
        feats, frames = batch_extract(upstream, padded, lengths, layers=layers)  # (B, [L,] T, D), (B,)
    feats = feats.detach().to("cpu", torch.float32).numpy()
    return [feats[i, ..., : int(n), :] for i, n in enumerate(frames)]


def _duration_order(files: list[Path]) -> list[Path]:
    """`files` shortest first, so a padded batch holds clips of similar length (little padding,
    and no short clip pays for a long one's quadratic attention). Unreadable files sort first;
    reading them later reports the error."""

    def duration_s(path: Path) -> float:
        try:
            return sf.info(str(path)).duration
        except (RuntimeError, OSError):  # soundfile errors are RuntimeErrors
            return 0.0

    return sorted(files, key=duration_s)


def extract_files(
    upstream_name: str,
    options: dict[str, Any],
    files: list[Path],
    layers: bool = False,
    cache_root: Path | None = None,
    progress: bool = True,
    pool: bool = False,
    batch_size: int = BATCH_SIZE,
) -> ExtractReport:
    """Extract features for each file once, reusing cached ones; misses go in padded batches.

    Args:
        upstream_name: upstream name or dotted module path.
        options: the upstream's `load` options.
        files: audio files.
        layers: store every hidden layer.
        cache_root: cache folder (default `$MELBENCH_HOME/features`).
        progress: show a progress bar.
        pool: store mean and std over frames instead of the frames (clip-level tasks).
        batch_size: clips per `extract_batch` call.

    Returns:
        The report, items in the order of `files`; a file that fails is listed in `skipped`
        and the rest go on.
    """
    upstream = load_upstream(upstream_name, options)
    cache = FeatureCache(cache_key(upstream_name, options, layers, pool), cache_root)
    report = ExtractReport(frame_rate=float(upstream.frame_rate), provenance=getattr(upstream, "provenance", None))
    pending: list[tuple[Path, str, np.ndarray]] = []  # (path, item id, wave) awaiting a batch

    def extract_pending() -> None:
        start = time.perf_counter()
        outs = _extract_batch(upstream, [wave for _, _, wave in pending], layers)
        report.extract_s += time.perf_counter() - start
        for (path, item, wave), feats in zip(pending, outs):
            duration_s = len(wave) / upstream.sample_rate
            report.extracted_audio_s += duration_s
            if not np.isfinite(feats).all():
                report.skipped.append((str(path), f"{path}: upstream {upstream_name!r} produced NaN/Inf features"))
                continue
            stored = pool_mean_std(feats) if pool else feats
            cache.put(item, stored)
            report.items.append(ItemResult(path, tuple(stored.shape), duration_s, False, cache.path(item)))
        pending.clear()

    def flush() -> None:
        extract_pending()  # its batch arrays are freed on its return, so the trim comes after
        memory.release_freed_memory()  # batches grow: freed blocks rarely fit the next one

    misses: list[tuple[Path, str]] = []
    for path in tqdm(files, desc=f"cache {upstream_name}", unit="file", disable=not progress, leave=False):
        try:
            item = _content_id(path)
        except MelbenchError as err:
            report.skipped.append((str(path), str(err)))
            continue
        feats = cache.get(item)  # None when absent or damaged
        if feats is None:
            misses.append((path, item))
            continue
        duration_s = sf.info(str(path)).duration
        report.items.append(ItemResult(path, tuple(feats.shape), duration_s, True, cache.path(item)))
    item_of = dict(misses)
    for path in tqdm(_duration_order(list(item_of)), desc=f"extract {upstream_name}", unit="file",
                     disable=not progress or not misses):
        try:
            pending.append((path, item_of[path], load_audio(path, upstream.sample_rate)))
        except MelbenchError as err:
            report.skipped.append((str(path), str(err)))
            continue
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    position = {str(path): i for i, path in reversed(list(enumerate(files)))}
    report.items.sort(key=lambda r: position[str(r.path)])
    return report
