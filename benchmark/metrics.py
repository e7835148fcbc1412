"""Metrics with real libraries (scikit-learn, mir_eval) and bootstrap confidence intervals.

Every metric takes the true labels and the probe's scores over the test rows. Confidence
intervals resample test *units* (clips, or utterances for frame-level tasks, so that the
correlated frames of one utterance move together) with a fixed seed: two upstreams scored on
the same test set see the same resamples, which makes their differences paired.
"""

from typing import Callable

import numpy as np

N_BOOTSTRAP = 200
BOOTSTRAP_SEED = 1234

MetricFn = Callable[[np.ndarray, np.ndarray, tuple[str, ...]], float]


def accuracy(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> float:
    """Fraction of rows whose top-scoring class is the true class (frame accuracy for frames)."""
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, scores.argmax(1)))


def macro_f1(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> float:
    """Unweighted mean of per-class F1 over the classes present in `y` or the predictions."""
    from sklearn.metrics import f1_score

    return float(f1_score(y, scores.argmax(1), average="macro", zero_division=0))


def _present(y: np.ndarray) -> np.ndarray:
    """Columns of a multi-hot matrix with both positives and negatives (AUC is defined)."""
    pos = y.sum(0)
    return (pos > 0) & (pos < len(y))


def roc_auc_macro(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> float:
    """Macro ROC-AUC over tags with both positives and negatives in the test rows."""
    from sklearn.metrics import roc_auc_score

    keep = _present(y)
    return float(roc_auc_score(y[:, keep], scores[:, keep], average="macro")) if keep.any() else float("nan")


def pr_auc_macro(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> float:
    """Macro average precision (PR-AUC) over tags with positives in the test rows."""
    from sklearn.metrics import average_precision_score

    keep = _present(y)
    return float(average_precision_score(y[:, keep], scores[:, keep], average="macro")) if keep.any() else float("nan")


def key_weighted(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> float:
    """Mean `mir_eval.key.weighted_score` (1 exact, 0.5 fifth, 0.3 relative, 0.2 parallel)."""
    import mir_eval

    pred = scores.argmax(1)
    return float(np.mean([mir_eval.key.weighted_score(classes[t], classes[p]) for t, p in zip(y, pred)]))


METRICS: dict[str, MetricFn] = {
    "accuracy": accuracy,
    "frame_accuracy": accuracy,
    "macro_f1": macro_f1,
    "roc_auc": roc_auc_macro,
    "pr_auc": pr_auc_macro,
    "key_weighted": key_weighted,
}


def bootstrap(
    metric: MetricFn,
    y: np.ndarray,
    scores: np.ndarray,
    classes: tuple[str, ...],
    units: np.ndarray,
    n_boot: int = N_BOOTSTRAP,
) -> np.ndarray:
    """Metric values on bootstrap resamples of the test units.

    Args:
        metric: one of `METRICS`.
        y: `(rows,)` class indices or `(rows, classes)` multi-hot.
        scores: `(rows, classes)` probe scores.
        classes: class names.
        units: `(rows,)` unit id of each row (clip index, or utterance for frame tasks).
        n_boot: number of resamples.

    Returns:
        `(n_boot,)` metric values; the resamples depend only on `units` and the fixed seed.
    """
    import sklearn

    unit_ids, inverse = np.unique(units, return_inverse=True)
    rows_of = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = np.empty(n_boot)
    # The inputs were validated by the point estimate; skipping sklearn's per-call checks
    # makes the 200 replicates several times faster.
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for b in range(n_boot):
            pick = rng.integers(0, len(unit_ids), len(unit_ids))
            rows = np.concatenate([rows_of[u] for u in pick])
            values[b] = metric(y[rows], scores[rows], classes)
    return values


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of `values` (NaNs ignored)."""
    lo, hi = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
