"""Metrics with real libraries (scikit-learn, mir_eval) and bootstrap confidence intervals.

Every metric takes the true labels and the probe's scores over the test rows; the point value
comes from scikit-learn or mir_eval. Confidence intervals resample test *units* (clips, or
utterances for frame-level tasks, so the correlated frames of one utterance move together)
with a fixed seed: two upstreams scored on the same test set see the same resamples, which
makes their differences paired.

A bootstrap resample is a vector of non-negative integer weights over rows (how often each
row was drawn), so each metric also has a vectorised *weighted* form that scores all
replicates at once. The weighted forms follow scikit-learn's definitions (macro-F1 over the
classes present in labels or predictions; ROC-AUC and average precision with tied scores
grouped into one threshold; tags without both positives and negatives left out), and the
tests check them against scikit-learn on explicitly repeated rows.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

N_BOOTSTRAP = 200
BOOTSTRAP_SEED = 1234


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
    """Macro average precision (PR-AUC) over tags with both positives and negatives."""
    from sklearn.metrics import average_precision_score

    keep = _present(y)
    return float(average_precision_score(y[:, keep], scores[:, keep], average="macro")) if keep.any() else float("nan")


def key_scores(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Per-row `mir_eval.key.weighted_score` (1 exact, 0.5 fifth, 0.3 relative, 0.2 parallel)."""
    import mir_eval

    pred = scores.argmax(1)
    return np.array([mir_eval.key.weighted_score(classes[t], classes[p]) for t, p in zip(y, pred)])


def key_weighted(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...]) -> float:
    """Mean `mir_eval.key` weighted score."""
    return float(key_scores(y, scores, classes).mean())


# ---- weighted forms: W is (replicates, rows) of resample counts; each returns (replicates,)


def _accuracy_w(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    correct = (scores.argmax(1) == y).astype(np.float64)
    return w @ correct / w.sum(1)


def _macro_f1_w(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    pred = scores.argmax(1)
    n_classes = max(scores.shape[1], int(y.max()) + 1)
    true_hot = np.eye(n_classes)[y]  # (rows, C)
    pred_hot = np.eye(n_classes)[pred]
    tp = w @ (true_hot * pred_hot)  # (B, C)
    fp = w @ pred_hot - tp
    fn = w @ true_hot - tp
    denom = 2 * tp + fp + fn
    present = denom > 0  # classes in the resampled labels or predictions
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    return (f1 * present).sum(1) / present.sum(1)


def _threshold_sums(y_col: np.ndarray, s_col: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted cumulative positives and negatives at each distinct score, highest first."""
    order = np.argsort(-s_col, kind="stable")
    s_sorted = s_col[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]  # tied scores = one threshold
    wy = w[:, order] * y_col[order]  # (B, rows)
    tps = np.cumsum(wy, axis=1)[:, last_of_tie]
    fps = np.cumsum(w[:, order] - wy, axis=1)[:, last_of_tie]
    return tps, fps


def _roc_auc_w(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    per_tag = []
    for c in range(y.shape[1]):
        tps, fps = _threshold_sums(y[:, c], scores[:, c], w)
        pos, neg = tps[:, -1:], fps[:, -1:]
        tpr = np.divide(tps, pos, out=np.full_like(tps, np.nan), where=pos > 0)
        fpr = np.divide(fps, neg, out=np.full_like(fps, np.nan), where=neg > 0)
        tpr, fpr = np.pad(tpr, ((0, 0), (1, 0))), np.pad(fpr, ((0, 0), (1, 0)))  # start at (0, 0)
        per_tag.append(np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1))  # trapezoids
    return _nanmean_rows(np.stack(per_tag, 1))


def _pr_auc_w(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    per_tag = []
    for c in range(y.shape[1]):
        tps, fps = _threshold_sums(y[:, c], scores[:, c], w)
        pos, neg = tps[:, -1:], fps[:, -1:]
        precision = np.divide(tps, tps + fps, out=np.zeros_like(tps), where=(tps + fps) > 0)
        recall = np.divide(tps, pos, out=np.zeros_like(tps), where=pos > 0)
        ap = np.sum(np.diff(np.pad(recall, ((0, 0), (1, 0))), axis=1) * precision, axis=1)
        ap[((pos == 0) | (neg == 0))[:, 0]] = np.nan  # only tags with both classes count
        per_tag.append(ap)
    return _nanmean_rows(np.stack(per_tag, 1))


def _nanmean_rows(x: np.ndarray) -> np.ndarray:
    counts = np.isfinite(x).sum(1)
    return np.where(counts > 0, np.nansum(x, 1) / np.maximum(counts, 1), np.nan)


def _key_w(y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], w: np.ndarray) -> np.ndarray:
    return w @ key_scores(y, scores, classes) / w.sum(1)


@dataclass(frozen=True)
class Metric:
    """A metric: the library point value and its weighted (bootstrap) form."""

    value: Callable[[np.ndarray, np.ndarray, tuple[str, ...]], float]
    weighted: Callable[[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray], np.ndarray]
    top_class_only: bool = False  # a row counts only through (label, top-scoring class)


METRICS: dict[str, Metric] = {
    "accuracy": Metric(accuracy, _accuracy_w, top_class_only=True),
    "frame_accuracy": Metric(accuracy, _accuracy_w, top_class_only=True),
    "macro_f1": Metric(macro_f1, _macro_f1_w, top_class_only=True),
    "roc_auc": Metric(roc_auc_macro, _roc_auc_w),
    "pr_auc": Metric(pr_auc_macro, _pr_auc_w),
    "key_weighted": Metric(key_weighted, _key_w, top_class_only=True),
}


def bootstrap_weights(units: np.ndarray, n_boot: int = N_BOOTSTRAP) -> np.ndarray:
    """Row weights of `n_boot` resamples of the units (with replacement), fixed seed.

    Args:
        units: `(rows,)` unit id of each row (clip, or utterance for frame tasks).
        n_boot: number of resamples.

    Returns:
        `(n_boot, rows)` float64: how often each row's unit was drawn.
    """
    _, inverse = np.unique(units, return_inverse=True)
    n_units = int(inverse.max()) + 1 if len(inverse) else 0
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, n_units, (n_boot, n_units))  # (B, units)
    unit_counts = np.stack([np.bincount(d, minlength=n_units) for d in draws])  # (B, units)
    return unit_counts[:, inverse].astype(np.float64)  # (B, rows)


def bootstrap(name: str, y: np.ndarray, scores: np.ndarray, classes: tuple[str, ...], units: np.ndarray) -> np.ndarray:
    """Metric values on bootstrap resamples of the test units.

    Args:
        name: a key of `METRICS`.
        y: `(rows,)` class indices or `(rows, classes)` multi-hot.
        scores: `(rows, classes)` probe scores.
        classes: class names.
        units: `(rows,)` unit id of each row.

    Returns:
        `(N_BOOTSTRAP,)` values; the resamples depend only on `units` and the fixed seed.
    """
    metric = METRICS[name]
    if not metric.top_class_only or y.ndim != 1:
        return metric.weighted(y, scores, classes, bootstrap_weights(units))
    # Rows of one unit with the same label and top class count alike, so they are scored as
    # one row weighted by their number: a frame-level test set of ~10^5 frames shrinks to a
    # few thousand rows. Every unit keeps a row, so the resamples are the same.
    triples = np.stack([units, y, scores.argmax(1)], 1)  # (rows, 3)
    _, first, multiplicity = np.unique(triples, axis=0, return_index=True, return_counts=True)
    w = bootstrap_weights(units[first]) * multiplicity  # (B, distinct rows)
    return metric.weighted(y[first], scores[first], classes, w)


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of `values` (NaNs ignored)."""
    lo, hi = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
