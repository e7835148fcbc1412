"""Untrained controls that are one model under several names, probed once.

Upstreams that build the same encoder at the same sizes from the same seed (Mockingjay, TERA
and BEST-RQ at one preset differ only in what they are trained to predict) have the same
untrained control, `NAME[random]`: bit-identical features, so bit-identical probe runs. Probing
each would cost a whole control's extraction and probes per repeat, and the report would count
one measurement several times (`benchmark.report.summary.identical_controls` folds them there).

`features_sha256` fingerprints what a loaded model computes: every layer's features of fixed
clips of 0.5 s to 30 s (longer than any embedded item, so positions past the first few seconds
are covered, and long enough to be chunked where a model declares `max_input_s`), with its
declared rates and sizes. A control whose fingerprint matches an earlier control's gets that
control's records, each marked `same_features_as`, instead of probes of its own.
"""

import hashlib
from typing import Any

import numpy as np

from benchmark import __version__
from benchmark.extract import features_of
from benchmark.runs import git_revision, now_utc, run_id

PROBE_CLIPS_S = (0.5, 4.0, 10.0, 30.0)
PROBE_SEED = 0


def features_sha256(upstream: Any) -> str:
    """sha256 of a loaded upstream's layer features of the probe clips and its declared facts.

    Args:
        upstream: a loaded upstream (`benchmark.registry.load_upstream`).

    Returns:
        The hex digest; two models with the same digest compute the same features.
    """
    sr_hz = int(upstream.sample_rate)
    digest = hashlib.sha256(f"{sr_hz}/{float(upstream.frame_rate)}/{int(upstream.feature_dim)}".encode())
    rng = np.random.default_rng(PROBE_SEED)
    for seconds in PROBE_CLIPS_S:
        t_s = np.arange(int(seconds * sr_hz)) / sr_hz
        # noise under a rising tone: every Mel band and every frame differ
        wave = 0.05 * rng.standard_normal(len(t_s)) + 0.3 * np.sin(2 * np.pi * (110 + 400 * t_s / seconds) * t_s)
        feats = features_of(upstream, wave.astype(np.float32), layers=True)  # (L, T, D) or (T, D)
        digest.update(f"{feats.shape}".encode())
        digest.update(np.ascontiguousarray(feats).tobytes())
    return digest.hexdigest()


def copy_runs(runner: Any, twin: Any, twin_label: str, provenance: dict | None) -> int:
    """Record a control's pending runs as copies of an earlier control's with the same features.

    Args:
        runner: the control's `benchmark.run.TaskRunner` for one task.
        twin: the earlier control's runner for the same task.
        twin_label: the earlier control's display name, written into each copy as `same_features_as`.
        provenance: this upstream's own `provenance` fact (its pretraining recipe, step 0).

    Returns:
        How many runs were copied; a run the twin has not recorded yet stays pending.
    """
    copied = 0
    for job in runner.pending():
        found = runner.log.get(run_id(twin.ident(*job)))
        if found is None:
            continue
        ident = runner.ident(*job)
        runner.log.append({**found, **ident, "run_id": run_id(ident), "same_features_as": twin_label,
                           "upstream_provenance": provenance, "extract_s": 0.0, "train_s": 0.0,
                           "git_revision": git_revision(), "melbench_version": __version__, "date": now_utc()})
        copied += 1
    return copied
