"""Extract features for audio files through the cache, skipping (and recording) bad files."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from benchmark.audio import load_audio
from benchmark.cache import FeatureCache, cache_key, file_sha256
from benchmark.errors import MelbenchError
from benchmark.registry import load_upstream
from benchmark.upstream import extract_chunked


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

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio extracted per wall-clock second (misses only)."""
        return self.extracted_audio_s / self.extract_s if self.extract_s > 0 else float("nan")


def _content_id(path: Path) -> str:
    """The file's sha256, with one-line errors for missing or unreadable files."""
    try:
        return file_sha256(path)
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


def extract_files(
    upstream_name: str,
    options: dict[str, Any],
    files: list[Path],
    layers: bool = False,
    cache_root: Path | None = None,
    progress: bool = True,
    pool: bool = False,
) -> ExtractReport:
    """Extract features for each file once, reusing cached ones.

    Args:
        upstream_name: upstream name or dotted module path.
        options: the upstream's `load` options.
        files: audio files.
        layers: store every hidden layer.
        pool: store mean and std over frames instead of the frames (clip-level tasks).
        cache_root: cache folder (default `$MELBENCH_HOME/features`).
        progress: show a progress bar.

    Returns:
        The report; a file that fails is listed in `skipped` and the rest go on.
    """
    upstream = load_upstream(upstream_name, options)
    cache = FeatureCache(cache_key(upstream_name, options, layers, pool), cache_root)
    report = ExtractReport(frame_rate=float(upstream.frame_rate))
    for path in tqdm(files, desc=f"extract {upstream_name}", unit="file", disable=not progress):
        try:
            item = _content_id(path)
            feats = cache.get(item)
            cached = feats is not None
            if cached:
                duration_s = sf.info(str(path)).duration
            else:
                wave = load_audio(path, upstream.sample_rate)
                start = time.perf_counter()
                feats = features_of(upstream, wave, layers)
                report.extract_s += time.perf_counter() - start
                duration_s = len(wave) / upstream.sample_rate
                report.extracted_audio_s += duration_s
                if not np.isfinite(feats).all():
                    raise MelbenchError(f"{path}: upstream {upstream_name!r} produced NaN/Inf features")
                if pool:
                    feats = pool_mean_std(feats)
                cache.put(item, feats)
        except MelbenchError as err:
            report.skipped.append((str(path), str(err)))
            continue
        report.items.append(ItemResult(path, tuple(feats.shape), duration_s, cached, cache.path(item)))
    return report
