"""A tiny built-in demo: synthetic timbres, Mel features through the cache, a linear probe.

It is a smoke test of the data flow (audio -> upstream.extract -> cache -> probe -> metric),
not evidence about any model: three harmonic timbres at random pitches are easy to separate.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmark.home import melbench_home

CLASSES = ("sine", "odd_harmonics", "all_harmonics")
DEMO_SR_HZ = 22050  # deliberately not 16 kHz, and stereo: the front-end resamples and mixes down


def _tone(kind: str, f0_hz: float, rng: np.random.Generator, duration_s: float = 1.0) -> np.ndarray:
    t = np.arange(int(duration_s * DEMO_SR_HZ)) / DEMO_SR_HZ
    harmonics = {"sine": [1], "odd_harmonics": range(1, 16, 2), "all_harmonics": range(1, 16)}[kind]
    wave = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in harmonics if k * f0_hz < DEMO_SR_HZ / 2)
    wave = wave * np.minimum(1.0, 10 * t) * np.exp(-t * rng.uniform(0.5, 3))  # attack, decay
    wave = 0.5 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(len(t))
    return np.stack([wave, rng.uniform(0.6, 1.0) * wave], axis=1).astype(np.float32)  # (n, 2) stereo


def build_demo(root: Path | None = None, per_class: int = 20, seed: int = 0) -> tuple[list[Path], list[int]]:
    """Write the demo clips (idempotent) and return their paths and labels.

    Args:
        root: folder (default `$MELBENCH_HOME/demo`).
        per_class: clips per class.
        seed: random seed for pitches and envelopes.

    Returns:
        Paths and integer labels (index into `CLASSES`).
    """
    root = root or melbench_home() / "demo"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(per_class):
        for label, kind in enumerate(CLASSES):
            f0_hz = 110 * 2 ** rng.uniform(0, 3)  # A2..A5
            wave = _tone(kind, f0_hz, rng)
            path = root / f"{kind}_{i:03d}.wav"
            if not path.exists():
                sf.write(path, wave, DEMO_SR_HZ, subtype="PCM_16")
            paths.append(path)
            labels.append(label)
    return paths, labels


@dataclass
class DemoResult:
    """Test-split figures of the demo probe."""

    n_train: int
    n_test: int
    accuracy: float
    macro_f1: float
    chance: float
    extract_x_realtime: float
    cache_hits: int


def run_demo(upstream: str = "mel", progress: bool = True) -> DemoResult:
    """Build the demo, extract features (cached), fit a linear probe, score the test split.

    Args:
        upstream: upstream name.
        progress: show progress bars.

    Returns:
        The figures.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from benchmark.extract import extract_files

    paths, labels = build_demo()
    report = extract_files(upstream, {}, paths, progress=progress)
    feats = {r.path: np.load(r.feature_path) for r in report.items}
    pooled = np.stack([np.concatenate([feats[p].mean(0), feats[p].std(0)]) for p in paths])  # (N, 2D)
    y = np.array(labels)
    x_tr, x_te, y_tr, y_te = train_test_split(pooled, y, test_size=1 / 3, stratify=y, random_state=0)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_tr, y_tr)
    pred = probe.predict(x_te)
    return DemoResult(
        n_train=len(y_tr),
        n_test=len(y_te),
        accuracy=float(accuracy_score(y_te, pred)),
        macro_f1=float(f1_score(y_te, pred, average="macro")),
        chance=1 / len(CLASSES),
        extract_x_realtime=report.realtime_factor,
        cache_hits=sum(r.cached for r in report.items),
    )
