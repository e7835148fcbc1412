"""Contract checker for upstreams, in the style of hear-validator.

Each check reports what it expected and what it received. `check_upstream` never raises for
a broken upstream: an exception inside the upstream becomes a failed check naming it.
"""

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from benchmark.upstream import batch_extract, pad_batch

# Absolute tolerance for "same result": determinism and batch-vs-single agreement.
ATOL = 1e-4
# An upstream computing in reduced precision may declare a looser `batch_tolerance` for the
# batch-vs-single check (a batch changes the GEMMs' accumulation order, and one flipped bf16
# rounding moves a value by 2^-8 of itself); the checker accepts at most 8 bf16 ulps.
MAX_BATCH_TOLERANCE = 2.0**-5


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check."""

    name: str
    passed: bool
    detail: str


class CheckFailed(Exception):
    """Raised inside a check with an "expected X, got Y" message."""


def test_signal(sr_hz: int, duration_s: float, seed: int = 0) -> torch.Tensor:
    """A deterministic clip: two harmonic tones plus a little noise.

    Args:
        sr_hz: sample rate.
        duration_s: length in seconds.
        seed: noise seed.

    Returns:
        `(round(duration_s * sr_hz),)` float32 in [-1, 1].
    """
    n = max(1, round(duration_s * sr_hz))
    t = np.arange(n) / sr_hz
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 659 * t) + 0.05 * rng.standard_normal(n)
    return torch.from_numpy(wave.astype(np.float32))


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"torch.Tensor {tuple(x.shape)} {x.dtype}"
    if isinstance(x, np.ndarray):
        return f"numpy.ndarray {x.shape} {x.dtype}"
    return type(x).__name__


def _features(upstream: Any, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
    """Call extract and validate the type, rank, width, dtype and finiteness of what it returns."""
    with torch.inference_mode():
        out = upstream.extract(wave.clone(), layers=layers)
    rank = 3 if layers else 2
    if not isinstance(out, torch.Tensor) or out.dim() != rank or out.dtype != torch.float32:
        want = "(num_layers, n_frames, feature_dim)" if layers else "(n_frames, feature_dim)"
        raise CheckFailed(f"expected a float32 torch.Tensor {want}, got {_describe(out)}")
    if out.shape[-1] != upstream.feature_dim:
        raise CheckFailed(f"expected feature_dim {upstream.feature_dim} (declared), got {out.shape[-1]}")
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise CheckFailed(f"expected finite features, got {bad} NaN/Inf values of {out.numel()}")
    return out.detach().cpu()


def check_facts(up: Any) -> str:
    for name, kinds in (("sample_rate", (int,)), ("frame_rate", (int, float)), ("feature_dim", (int,))):
        value = getattr(up, name, None)
        if not isinstance(value, kinds) or isinstance(value, bool) or not value > 0:
            kind = " or ".join(k.__name__ for k in kinds)
            raise CheckFailed(f"expected {name} to be a positive {kind}, got {value!r}")
    layers = getattr(up, "num_layers", 1)
    if not isinstance(layers, int) or isinstance(layers, bool) or layers < 1:
        raise CheckFailed(f"expected num_layers to be an int >= 1, got {layers!r}")
    if not callable(getattr(up, "extract", None)):
        raise CheckFailed("expected a callable extract(wave, layers=False), got none")
    return f"sample_rate={up.sample_rate} frame_rate={up.frame_rate} feature_dim={up.feature_dim} num_layers={layers}"


def check_frames_vs_duration(up: Any) -> str:
    counts = []
    for duration_s in (0.37, 1.0, 2.5):
        frames = _features(up, test_signal(up.sample_rate, duration_s)).shape[0]
        expected = duration_s * up.frame_rate
        if abs(frames - expected) > 1 + 1e-9:
            raise CheckFailed(f"expected {expected:.1f} +- 1 frames for {duration_s} s, got {frames}")
        counts.append(f"{duration_s}s->{frames}")
    return ", ".join(counts)


def check_determinism(up: Any) -> str:
    wave = test_signal(up.sample_rate, 1.0)
    a, b = _features(up, wave), _features(up, wave)
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    if a.shape != b.shape or diff > ATOL:
        raise CheckFailed(f"expected identical output on repeat, got shapes {tuple(a.shape)}/{tuple(b.shape)}, max diff {diff:.2e}")
    return f"max diff {diff:.1e}"


def check_batch_vs_single(up: Any) -> str:
    tol = getattr(up, "batch_tolerance", ATOL)
    if not isinstance(tol, float) or not ATOL <= tol <= MAX_BATCH_TOLERANCE:
        raise CheckFailed(f"expected batch_tolerance to be a float in [{ATOL}, {MAX_BATCH_TOLERANCE}], got {tol!r}")
    waves = [test_signal(up.sample_rate, d, seed=i) for i, d in enumerate((0.5, 1.3, 0.8))]
    padded, lengths = pad_batch(waves)
    with torch.inference_mode():
        feats, frames = batch_extract(up, padded, lengths)
    worst = 0.0
    for i, wave in enumerate(waves):
        single = _features(up, wave)
        if int(frames[i]) != single.shape[0]:
            raise CheckFailed(f"clip {i}: expected {single.shape[0]} frames (single path), got {int(frames[i])} (batched)")
        diff = float((feats[i, : single.shape[0]].float().cpu() - single).abs().max())
        if diff > tol * max(1.0, float(single.abs().max())):
            raise CheckFailed(f"clip {i}: expected batched == single within {tol:.1e}, got max diff {diff:.2e}")
        worst = max(worst, diff)
    return f"3 clips, max diff {worst:.1e} (tolerance {tol:.1e})"


def check_silence(up: Any) -> str:
    feats = _features(up, torch.zeros(up.sample_rate))
    return f"1 s of zeros -> {tuple(feats.shape)}, finite"


def check_short_input(up: Any) -> str:
    shapes = []
    for n in (1, 10, max(1, up.sample_rate // 200)):
        feats = _features(up, test_signal(up.sample_rate, n / up.sample_rate))
        if abs(feats.shape[0] - n / up.sample_rate * up.frame_rate) > 1 + 1e-9:
            raise CheckFailed(f"expected at most 1 frame for {n} samples, got {feats.shape[0]}")
        shapes.append(f"{n}->{feats.shape[0]}")
    return "samples->frames " + ", ".join(shapes)


def check_layers(up: Any) -> str:
    n_layers = getattr(up, "num_layers", 1)
    wave = test_signal(up.sample_rate, 1.0)
    stacked = _features(up, wave, layers=True)
    single = _features(up, wave)
    if stacked.shape[0] != n_layers or stacked.shape[1] != single.shape[0]:
        raise CheckFailed(
            f"expected layers=True shape ({n_layers}, {single.shape[0]}, {up.feature_dim}), got {tuple(stacked.shape)}"
        )
    return f"{tuple(stacked.shape)}"


CHECKS: list[tuple[str, Callable[[Any], str]]] = [
    ("facts", check_facts),
    ("frames vs duration", check_frames_vs_duration),
    ("determinism", check_determinism),
    ("batch vs single", check_batch_vs_single),
    ("silence", check_silence),
    ("very short input", check_short_input),
    ("layers", check_layers),
]


def check_upstream(upstream: Any) -> list[CheckResult]:
    """Run every contract check on a loaded upstream.

    Args:
        upstream: the object returned by an upstream module's `load`.

    Returns:
        One result per check; after a failed `facts` check the rest are not run (they would
        only repeat it) and are reported as not run.
    """
    results = []
    for name, fn in CHECKS:
        if results and not results[0].passed:
            results.append(CheckResult(name, False, "not run: the declared facts are invalid"))
            continue
        try:
            results.append(CheckResult(name, True, fn(upstream)))
        except CheckFailed as err:
            results.append(CheckResult(name, False, str(err)))
        except Exception as err:  # the upstream's own bug: report it, do not crash the checker
            results.append(CheckResult(name, False, f"extract raised {type(err).__name__}: {err}"))
    return results

