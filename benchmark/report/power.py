"""How small an advantage over Mel a run could have found at its scarce label budgets, and how
many seeds would find the report's `min_effect`.

A true advantage d is found by the two-sided 5% test, uncorrected, with 80% power when
d >= Z * se, Z = z(0.975) + z(0.8) = 2.80, where se is the hierarchical bootstrap's standard
error, the one the report's p-values use. `bootstrap.variance_parts` splits its variance into
a part every seed shares (they are scored on the same test split), which no number of seeds
removes, and parts that fall with more seeds; `bootstrap.hierarchical_variance` predicts it at
another number of seeds.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist, median

from benchmark.report.bootstrap import hierarchical_variance
from benchmark.report.summary import Budget, Comparison, is_control
from benchmark.tasks import ReportSpec

Z_POWER = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)  # two-sided 5% test, 80% power
MAX_SEEDS = 1 << 20  # the search for enough seeds stops here


@dataclass(frozen=True)
class Detectability:
    """The noise of one task's comparisons with Mel at one label budget.

    Attributes:
        task: the task.
        budget: the label budget.
        n_upstreams: learned upstreams compared with Mel there.
        n_seeds: seeds the comparisons share (the fewest, if they differ).
        se: median over the upstreams of the difference's standard error.
        parts: median over the upstreams of each of `bootstrap.variance_parts`.
    """

    task: str
    budget: Budget
    n_upstreams: int
    n_seeds: int
    se: float
    parts: dict[str, float]

    @property
    def smallest(self) -> float:
        """The smallest advantage found with 80% power at the run's seeds."""
        return Z_POWER * self.se

    @property
    def floor(self) -> float:
        """The smallest advantage found with 80% power with unlimited seeds."""
        return Z_POWER * math.sqrt(self.parts["shared"])

    def seeds_for(self, advantage: float) -> int | None:
        """The fewest seeds (at least 2) at which `advantage` is found with 80% power.

        The measured standard error (`smallest`) says whether the run's own seeds suffice; the
        variance model (`bootstrap.hierarchical_variance` of the median `parts`) says how many
        fewer or more would, so the answer never contradicts the table's `smallest` column.

        Args:
            advantage: the true advantage to find.

        Returns:
            At most the run's seeds if `smallest <= advantage`, more otherwise; None if the run
            has one seed (its variance across seeds is unknown), the parts are not finite, or
            no number of seeds up to `MAX_SEEDS` would do it.
        """
        if self.n_seeds < 2 or not all(math.isfinite(v) for v in self.parts.values()):
            return None
        found_now = self.smallest <= advantage
        target_var = (advantage / Z_POWER) ** 2
        if hierarchical_variance(self.parts, MAX_SEEDS) > target_var:
            return self.n_seeds if found_now else None
        low, high = (2 if found_now else self.n_seeds + 1), MAX_SEEDS  # the predicted variance falls from 2 seeds on
        while low < high:
            mid = (low + high) // 2
            low, high = (mid + 1, high) if hierarchical_variance(self.parts, mid) > target_var else (low, mid)
        return min(low, self.n_seeds) if found_now else low


def detectability(comps: list[Comparison]) -> list[Detectability]:
    """One `Detectability` per task and scarce budget, over the learned upstreams (controls left out).

    Args:
        comps: `summary.compare(...)`.

    Returns:
        By task, smallest budget first.
    """
    groups: dict[tuple[str, float], list[Comparison]] = {}
    for c in comps:
        if c.budget.scarce and not is_control(c.label):
            groups.setdefault((c.task, c.budget.fraction), []).append(c)
    return [Detectability(task, cs[0].budget, len(cs), min(c.effect["n_seeds"] for c in cs),
                          median(c.effect["se"] for c in cs),
                          {k: median(c.effect["var_parts"][k] for c in cs) for k in cs[0].effect["var_parts"]})
            for (task, _), cs in sorted(groups.items())]


def _seeds_text(d: Detectability, advantage: float) -> str:
    needed = d.seeds_for(advantage)
    if needed is not None:
        return f"{needed}"
    if d.n_seeds < 2:
        return "unknown with one seed"
    if not math.isfinite(d.floor):
        return "unknown"
    if d.floor >= advantage:
        return f"none: the test split alone leaves {d.floor:.3f}"
    return f"more than {MAX_SEEDS}"


def power_lines(comps: list[Comparison], spec: ReportSpec = ReportSpec()) -> list[str]:
    """The REPORT.md section on how small an advantage the run could find with scarce labels.

    Args:
        comps: `summary.compare(...)`.
        spec: the report's settings (`min_effect` is the advantage asked about).

    Returns:
        Markdown lines; none when no learned upstream was compared at a scarce budget.
    """
    rows = detectability(comps)
    if not rows:
        return []
    goal = spec.min_effect
    table = [f"| {d.task} | {d.budget.label()} | {d.n_seeds} | {d.n_upstreams} | {d.se:.4f} | {d.smallest:.3f} | "
             f"{math.sqrt(d.parts['shared']):.4f} | {_seeds_text(d, goal)} |" for d in rows]
    found = [d for d in rows if d.smallest <= goal]
    by_seeds = [d for d in rows if d.smallest > goal and d.seeds_for(goal) is not None]
    never = [d for d in rows if d.smallest > goal and d.seeds_for(goal) is None and d.n_seeds >= 2]
    one_seed = [d for d in rows if d.smallest > goal and d.n_seeds < 2]

    def names(ds: list[Detectability]) -> str:
        return ", ".join(f"{d.task} at {d.budget.names}" for d in ds) or "none"

    return ["## How small an advantage could this run find?", "",
            f"A true advantage over Mel is found (95% CI excluding zero, uncorrected) with 80% power when it is at "
            f"least {Z_POWER:.2f} standard errors of the paired difference; the correction over the family asks for "
            f"more. The standard error is the hierarchical bootstrap's (median over the learned upstreams). Part of "
            f"its variance is shared by every seed, since all are scored on one test split, and stays whatever the "
            f"number of seeds; the rest falls with more seeds (`benchmark.report.bootstrap.variance_parts`). Scarce "
            f"budgets only.", "",
            "| task | labels | seeds | upstreams | standard error | smallest advantage found (80% power) | "
            f"shared by every seed (SE) | seeds to find {goal:g} |", "|---|---|---|---|---|---|---|---|", *table, "",
            f"An advantage of {goal:g} would be found with 80% power at {len(found)} of {len(rows)} scarce budgets "
            f"with these seeds ({names(found)}); more seeds would find it at {names(by_seeds)}; no number of seeds "
            f"at {names(never)}" + (f"; unknown with one seed at {names(one_seed)}" if one_seed else "") + ".", ""]
