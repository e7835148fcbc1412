"""The statistics behind the report: label budgets, paired effects over Mel with p-values, the
Benjamini-Hochberg correction over the family of comparisons, and the low-data interaction.

Every interval and p-value comes from the same hierarchical bootstrap: for each replicate b
(one resample of the test split's independent units, shared by every upstream of a task) the
seeds are resampled with replacement and their replicate-b values averaged. A p-value is the
two-sided Wald test of the paired difference with that distribution's standard deviation as
its standard error (a percentile p-value from 200 replicates could never go below 0.01, too
coarse for a correction over a hundred comparisons).
"""

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.registry import BASELINE
from benchmark.report.bootstrap import (
    benjamini_hochberg, hierarchical_ci, hierarchical_se, variance_parts, wald_p,
)
from benchmark.tasks import ReportSpec, TaskSpec

Table = dict[tuple[str, str, float], dict[int, dict[str, Any]]]  # (task, label, fraction) -> seed -> record


def upstream_label(record: dict[str, Any]) -> str:
    """Display name: the upstream, its variant (`random` for the untrained control, `step=N` for
    a pretraining snapshot) and its options other than the checkpoint path (a path shows by
    its file name, which keeps table columns and plot legends narrow)."""
    opts = {k: Path(v).name if isinstance(v, str) and "/" in v else v
            for k, v in record["upstream_options"].items() if k != "checkpoint"}
    parts = ([record["variant"]] if record.get("variant") else []) + [f"{k}={v}" for k, v in sorted(opts.items())]
    return record["upstream"] + (f"[{', '.join(parts)}]" if parts else "")


def label_order(label: str) -> tuple:
    """Sort key of display names: Mel first, then each upstream, its control, its snapshots by step."""
    match = re.search(r"\[(random|step=(\d+))", label)
    rank = 0 if match is None else 1 if match.group(1) == "random" else 2 + int(match.group(2))
    return (not is_baseline(label), label.split("[")[0], rank, label)


def is_baseline(label: str) -> bool:
    """Whether a display name is the Mel baseline's (with any options)."""
    return label.split("[")[0] == BASELINE


def collect(records: list[dict[str, Any]]) -> Table:
    """The main probe runs (not the per-layer sweep: `layer` None, whatever the task's
    `layer_choice`) by (task, upstream label, fraction) then seed; the latest wins."""
    table: Table = defaultdict(dict)
    for r in records:
        if r.get("layer") is None:
            table[(r["task"], upstream_label(r), r["fraction"])][r["seed"]] = r
    return table


def summarise(by_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean headline metric over seeds with its hierarchical 95% interval."""
    recs = [by_seed[s] for s in sorted(by_seed)]
    metric = recs[0]["headline_metric"]
    values = np.array([r["metrics"][metric]["value"] for r in recs])
    lo, hi = hierarchical_ci(np.array([r["bootstrap"][metric] for r in recs]))
    return {"metric": metric, "mean": float(values.mean()), "seed_sd": float(values.std()), "lo": lo, "hi": hi,
            "n_seeds": len(recs)}


def paired(up: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]]) -> tuple[list[int], str] | None:
    """The seeds two cells share and their headline metric, or None if they share none."""
    seeds = sorted(set(up) & set(base))
    return (seeds, up[seeds[0]]["headline_metric"]) if seeds else None


def differences(up: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]], seeds: list[int],
                metric: str) -> tuple[float, np.ndarray]:
    """Mean point difference over `seeds` and the `(seeds, replicates)` paired bootstrap differences."""
    point = float(np.mean([up[s]["metrics"][metric]["value"] - base[s]["metrics"][metric]["value"] for s in seeds]))
    boots = np.array([np.subtract(up[s]["bootstrap"][metric], base[s]["bootstrap"][metric]) for s in seeds])
    return point, boots


def effect(up: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Paired difference (upstream - baseline) of the headline metric over shared seeds.

    Returns:
        `diff`, `lo`, `hi` (95% CI), `p` (uncorrected), `excludes_zero`, and what
        `benchmark.report.power` reads: `se` (the hierarchical bootstrap's standard error),
        `var_parts` (`bootstrap.variance_parts`) and `n_seeds`; None without shared seeds.
    """
    shared = paired(up, base)
    if shared is None:
        return None
    diff, boots = differences(up, base, *shared)
    lo, hi = hierarchical_ci(boots)
    se = hierarchical_se(boots)
    return {"diff": diff, "lo": lo, "hi": hi, "p": wald_p(diff, se), "excludes_zero": lo > 0 or hi < 0,
            "se": se, "var_parts": variance_parts(boots), "n_seeds": len(shared[0])}


def interaction(up_small: dict, base_small: dict, up_large: dict, base_large: dict) -> dict[str, Any] | None:
    """How much the effect over the baseline changes from the largest to the smallest budget.

    Returns:
        `change` = effect at the small budget - effect at the large one, its 95% CI (`lo`,
        `hi`), `p`, and both effects; None without seeds shared by all four cells.
    """
    seeds = sorted(set(up_small) & set(base_small) & set(up_large) & set(base_large))
    if not seeds:
        return None
    metric = up_small[seeds[0]]["headline_metric"]
    small, small_boots = differences(up_small, base_small, seeds, metric)
    large, large_boots = differences(up_large, base_large, seeds, metric)
    boots = small_boots - large_boots  # paired by seed and test resample
    lo, hi = hierarchical_ci(boots)
    change = small - large
    return {"change": change, "lo": lo, "hi": hi, "p": wald_p(change, hierarchical_se(boots)), "small": small,
            "large": large}


@dataclass(frozen=True)
class Budget:
    """One distinct labelled training set size of a task (fractions giving the same subsets merged).

    Attributes:
        fractions: the label fractions that give these subsets, smallest first.
        n_items: labelled training items (mean over seeds), None in older records.
        n_units: recordings they come from (mean over seeds), None in older records.
        hours: hours of labelled audio (mean over seeds), None in older records.
        scarce_fraction: the task's `scarce_fraction` (`tasks.yaml`; its default for older records).
    """

    fractions: tuple[float, ...]
    n_items: float | None
    n_units: float | None
    hours: float | None
    scarce_fraction: float = TaskSpec.scarce_fraction

    @property
    def scarce(self) -> bool:
        """Whether the report's answer counts this budget as scarce."""
        return self.fractions[0] <= self.scarce_fraction

    @property
    def fraction(self) -> float:
        """The fraction the table is keyed by: the smallest."""
        return self.fractions[0]

    @property
    def names(self) -> str:
        """The fractions, e.g. `1% = 5%`."""
        return " = ".join(f"{f:.0%}" if f >= 0.01 else f"{f:.1%}" for f in self.fractions)

    def label(self) -> str:
        """A column header, e.g. `1% = 5% (24 items, 0.07 h)`."""
        if self.n_items is None:
            return self.names
        size = f"{self.n_items:.0f} items" + (f", {self.hours:.2f} h" if self.hours is not None else "")
        return f"{self.names} ({size})"


def _mean(values: list[Any]) -> float | None:
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


def budgets(table: Table) -> dict[str, list[Budget]]:
    """Each task's distinct label budgets, smallest first.

    Two fractions are one budget when every seed drew the same subset for both (the
    one-recording-per-class floor can make a 1% and a 5% subset equal), judged by the records'
    `subset_sha256`; records without it keep every fraction apart.

    Args:
        table: `report.collect(records)`.

    Returns:
        `{task: [Budget, ...]}`.
    """
    cells: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for (task, _, fraction), by_seed in table.items():
        cells[task][fraction].extend(by_seed.values())
    out = {}
    for task, by_fraction in cells.items():
        merged: list[tuple[Any, list[float], list[dict[str, Any]]]] = []
        for fraction in sorted(by_fraction):
            recs = by_fraction[fraction]
            hashes = {(r["seed"], r.get("subset_sha256")) for r in recs}
            signature = frozenset(hashes) if all(h for _, h in hashes) else None
            if merged and signature is not None and merged[-1][0] == signature:
                merged[-1][1].append(fraction)
            else:
                merged.append((signature, [fraction], recs))
        out[task] = [Budget(tuple(fr), _mean([r.get("n_train_items") for r in recs]),
                            _mean([r.get("n_train_units") for r in recs]), _mean([r.get("train_hours") for r in recs]),
                            max(r.get("scarce_fraction", TaskSpec.scarce_fraction) for r in recs))
                     for _, fr, recs in merged]
    return out


@dataclass
class Comparison:
    """One upstream against the Mel baseline on one task at one label budget.

    Attributes:
        task: the task.
        label: the upstream's display name.
        budget: the label budget.
        effect: `effect(...)` of the pair.
        significant: rejected by Benjamini-Hochberg at the report's `fdr_q` over the whole family.
    """

    task: str
    label: str
    budget: Budget
    effect: dict[str, Any]
    significant: bool = False

    @property
    def verdict(self) -> str:
        """"better", "worse" or "no clear difference" after the correction."""
        if not self.significant:
            return "no clear difference"
        return "better" if self.effect["diff"] > 0 else "worse"


def is_snapshot(label: str) -> bool:
    """A pretraining-curve snapshot (`NAME[step=N]`), which the verdicts leave out."""
    return "[step=" in label


def is_control(label: str) -> bool:
    """An untrained control (`NAME[random]`)."""
    return "[random" in label


def model_of(label: str) -> str:
    """The pretrained row an untrained control belongs to (`tera[random]` -> `tera`,
    `hear[random, module=m]` -> `hear[module=m]`); any other label is its own."""
    return label.replace("[random, ", "[").replace("[random]", "")


def identical_controls(table: Table) -> dict[str, str]:
    """Controls whose every probe run gave exactly another control's results, each mapped to the
    first of its group (by `label_order`).

    Upstreams that share an encoder, its sizes and its initial weights (Mockingjay, TERA and
    BEST-RQ at one preset) have the same untrained control: its features, and so its records,
    are bit-identical. Counting such a group once keeps one measurement from filling the
    family of comparisons (and the answer's counts) several times over.

    Args:
        table: `collect(records)`.

    Returns:
        `{duplicate label: the label it repeats}`; empty when no two controls agree everywhere.
    """
    runs: dict[str, dict[tuple[str, float, int], str]] = defaultdict(dict)
    for (task, label, fraction), by_seed in table.items():
        if is_control(label):
            for seed, r in by_seed.items():
                runs[label][(task, fraction, seed)] = json.dumps([r["metrics"], r["bootstrap"]], sort_keys=True)
    first: dict[frozenset, str] = {}
    same = {}
    for label in sorted(runs, key=label_order):
        signature = frozenset(runs[label].items())
        if signature in first:
            same[label] = first[signature]
        else:
            first[signature] = label
    return same


def compare(table: Table, fdr_q: float = ReportSpec.fdr_q) -> list[Comparison]:
    """Every non-baseline upstream (controls included, each group of `identical_controls` once;
    snapshots not) against Mel at every task and distinct budget, corrected together by
    Benjamini-Hochberg.

    Args:
        table: `collect(records)`.
        fdr_q: the correction's false-discovery rate (`ReportSpec.fdr_q`).

    Returns:
        The comparisons, by task, upstream and budget.
    """
    repeats = identical_controls(table)
    found = []
    for task, task_budgets in sorted(budgets(table).items()):
        labels = sorted({u for t, u, _ in table if t == task})
        base = next((u for u in labels if is_baseline(u)), None)
        if base is None:
            continue
        for u in labels:
            if is_baseline(u) or is_snapshot(u) or u in repeats:
                continue
            for b in task_budgets:
                e = effect(table.get((task, u, b.fraction), {}), table.get((task, base, b.fraction), {}))
                if e is not None:
                    found.append(Comparison(task, u, b, e))
    for c, rejected in zip(found, benjamini_hochberg([c.effect["p"] for c in found], fdr_q)):
        c.significant = rejected
    return found


def audio_hours_seen(record: dict[str, Any]) -> float | None:
    """Hours of audio a record's upstream saw in pretraining (steps x batch x crop), if pretrained by melbench."""
    prov = record.get("upstream_provenance") or {}
    step = record.get("pretrain_step") if record.get("variant") else prov.get("steps")
    if step is None or prov.get("batch_size") is None or prov.get("crop_s") is None:
        return None
    return step * prov["batch_size"] * prov["crop_s"] / 3600


def compute_curves(table: Table) -> dict[str, dict[str, dict[float, list[dict[str, Any]]]]]:
    """The pretraining-compute curve: effect over Mel against audio seen in pretraining.

    Args:
        table: `collect(records)`.

    Returns:
        `{task: {upstream: {fraction: [point, ...]}}}` for upstreams with snapshots, each point
        `{"hours", "step", "label", **effect}` in order of hours (step 0 is the control, the
        last the model itself).
    """
    curves: dict[str, dict[str, dict[float, list[dict[str, Any]]]]] = defaultdict(lambda: defaultdict(dict))
    groups: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for (task, label, fraction), by_seed in table.items():
        record = next(iter(by_seed.values()))
        groups[(task, upstream_label({**record, "variant": None}))][label].append(fraction)
    for (task, name), members in groups.items():
        if len(members) < 2 or is_baseline(name):
            continue
        base = next((u for t, u, _ in table if t == task and is_baseline(u)), None)
        snapshot_fractions = {f for label, fs in members.items() if is_snapshot(label) for f in fs}
        for fraction in sorted(snapshot_fractions):
            points = []
            for label in members:
                cell = table.get((task, label, fraction), {})
                e = effect(cell, table.get((task, base, fraction), {})) if cell and base else None
                hours = audio_hours_seen(next(iter(cell.values()))) if cell else None
                if e is not None and hours is not None:
                    step = next(iter(cell.values())).get("pretrain_step")
                    points.append({"hours": hours, "step": step, "label": label, **e})
            if len(points) >= 2:
                curves[task][name][fraction] = sorted(points, key=lambda p: p["hours"])
    return curves
