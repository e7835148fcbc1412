"""Statistics on `(seeds, replicates)` arrays of bootstrap values: the hierarchical interval, its
standard error and p-value, the part of the variance that more seeds would not remove, and the
Benjamini-Hochberg correction (`benchmark.report.summary` says how the replicates are drawn).
"""

import math

import numpy as np

from benchmark.tasks import ReportSpec

# Fixed so that one runs.jsonl always gives the same report, byte for byte (tests/test_results_folder.py);
# any seed gives an equally valid interval, so it is not a setting of the protocol.
CI_SEED = 7


def hierarchical_means(boots: np.ndarray) -> np.ndarray:
    """Seed-resampled means per bootstrap replicate.

    Args:
        boots: `(seeds, replicates)` values.

    Returns:
        `(replicates,)`: for replicate b, the mean over a resample of the seeds of their replicate-b values.
    """
    rng = np.random.default_rng(CI_SEED)
    n_seeds, n_boot = boots.shape
    pick = rng.integers(0, n_seeds, (n_boot, n_seeds))  # (B, S) seed resample per replicate
    return np.nanmean(boots[pick, np.arange(n_boot)[:, None]], axis=1)  # (B,)


def hierarchical_ci(boots: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `hierarchical_means(boots)`.

    Args:
        boots: `(seeds, replicates)` metric values.
        level: coverage.

    Returns:
        (low, high).
    """
    lo, hi = np.nanpercentile(hierarchical_means(boots), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def hierarchical_se(boots: np.ndarray) -> float:
    """Standard error of the seed mean: the standard deviation of `hierarchical_means(boots)`.

    Args:
        boots: `(seeds, replicates)` values.

    Returns:
        The standard error.
    """
    return float(np.nanstd(hierarchical_means(boots)))


def variance_parts(boots: np.ndarray) -> dict[str, float]:
    """What the hierarchical bootstrap's variance is made of, to predict it at another number of seeds.

    Model: seed s's replicate-b value is d_sb = e_s + c_b + u_sb. Every seed is scored on the same
    test split, so c_b (that split's sample) is common to all; u_sb is each seed's own response
    to the resample and e_s its labelled subset's effect. For S seeds the variance of
    `hierarchical_means` is then `shared + own / S + (S - 1) * across / S**2`
    (`hierarchical_variance`).

    Args:
        boots: `(seeds, replicates)` values.

    Returns:
        `shared`: var(c), the mean covariance over replicates between two different seeds (0 with
        one seed, never below 0); `own`: var(u), a seed's variance over replicates minus `shared`;
        `across`: var(e + u), the variance across seeds within a replicate (0 with one seed).
    """
    n_seeds = boots.shape[0]
    scored = boots[:, ~np.isnan(boots).any(axis=0)]  # (S, B') replicates every seed could score
    cov = np.atleast_2d(np.cov(scored))  # (S, S)
    shared = 0.0 if n_seeds < 2 else max(float((cov.sum() - np.trace(cov)) / (n_seeds * (n_seeds - 1))), 0.0)
    own = max(float(np.mean(np.diag(cov))) - shared, 0.0)
    across = float(np.mean(np.var(scored, axis=0, ddof=1))) if n_seeds > 1 else 0.0
    return {"shared": shared, "own": own, "across": across}


def hierarchical_variance(parts: dict[str, float], n_seeds: int) -> float:
    """The expected variance of `hierarchical_means` with `n_seeds` seeds (`variance_parts`' model).

    Args:
        parts: `variance_parts(...)` (or medians of them).
        n_seeds: the number of seeds to predict it for.

    Returns:
        The predicted variance.
    """
    return parts["shared"] + parts["own"] / n_seeds + (n_seeds - 1) * parts["across"] / n_seeds**2


def wald_p(estimate: float, se: float) -> float:
    """Two-sided p-value of `estimate` against zero.

    Args:
        estimate: the point difference.
        se: its standard error (`hierarchical_se` of the paired differences).

    Returns:
        The p-value (1.0 when the standard error is 0 and the estimate is 0).
    """
    if se == 0:
        return 1.0 if estimate == 0 else 0.0
    return math.erfc(abs(estimate) / se / math.sqrt(2))


def benjamini_hochberg(p_values: list[float], q: float = ReportSpec.fdr_q) -> list[bool]:
    """Which hypotheses are rejected at false-discovery rate `q` (step-up procedure).

    Args:
        p_values: one per comparison of the family.
        q: the false-discovery rate.

    Returns:
        One flag per p-value, in the given order.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    cutoff = 0
    for rank, i in enumerate(order, 1):
        if p_values[i] <= q * rank / m:
            cutoff = rank
    rejected = [False] * m
    for i in order[:cutoff]:
        rejected[i] = True
    return rejected
