"""Synthetic audio for pretraining tests: deterministic harmonic glides (no noise, so the
log-Mel frames are predictable from context and a loss can fall)."""

from pathlib import Path

import numpy as np
import soundfile as sf

from benchmark.registry import available_upstreams, load_module

# Every upstream melbench pretrains (its module defines a SPEC), from the registry: a new one gets
# the pretraining, resume, loading and HEAR tests without an edit here.
SSL_UPSTREAMS = [name for name in available_upstreams() if getattr(load_module(name), "SPEC", None) is not None]
# Those built on upstreams._transformer (their configs have attention heads).
TRANSFORMER_UPSTREAMS = [name for name in SSL_UPSTREAMS if hasattr(load_module(name).SPEC.config_cls, "heads")]


def write_corpus(folder: Path, n_files: int = 8, seconds: float = 3.0, seed: int = 0) -> Path:
    """Write `n_files` 16 kHz wav files of harmonic tones with vibrato and tremolo."""
    rng = np.random.default_rng(seed)
    sr_hz = 16000
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        t_s = np.arange(int(sr_hz * seconds)) / sr_hz
        f0_hz = rng.uniform(100, 300) * 2 ** (rng.uniform(-0.5, 0.5) * np.sin(2 * np.pi * rng.uniform(0.3, 1) * t_s))
        phase = 2 * np.pi * np.cumsum(f0_hz) / sr_hz
        wave = sum((k * f0_hz < 7600) * np.sin(k * phase) / k for k in range(1, 60))
        wave *= 0.2 * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t_s))
        sf.write(folder / f"clip{i}.wav", wave.astype(np.float32), sr_hz)
    return folder
