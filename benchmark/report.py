"""`melbench report`: tables, plots and REPORT.md, regenerated from runs.jsonl alone.

Confidence intervals combine both sources of variation: for each bootstrap replicate b (a
resample of the test units, the same for every upstream) the seeds are resampled with
replacement and their replicate-b metrics averaged; the 2.5th and 97.5th percentiles over b
form the 95% interval. Effects over the Mel baseline are computed the same way on per-seed,
per-replicate differences, which are paired: the same seed gives the same labelled subset and
the same replicate the same test resample.
"""

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError
from benchmark.runs import read_runs

BASELINE = "mel"
CI_SEED = 7


def upstream_label(record: dict[str, Any]) -> str:
    """Display name: the upstream, plus its options other than the checkpoint path (a weights
    file shows by its file name, which keeps table columns and plot legends narrow)."""
    opts = {k: Path(v).name if k == "weights" else v for k, v in record["upstream_options"].items()
            if k != "checkpoint"}
    return record["upstream"] + (f"[{', '.join(f'{k}={v}' for k, v in sorted(opts.items()))}]" if opts else "")


def hierarchical_ci(boots: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Interval over seeds and test resamples.

    Args:
        boots: `(seeds, replicates)` metric values.
        level: coverage.

    Returns:
        (low, high).
    """
    rng = np.random.default_rng(CI_SEED)
    n_seeds, n_boot = boots.shape
    pick = rng.integers(0, n_seeds, (n_boot, n_seeds))  # (B, S) seed resample per replicate
    means = np.nanmean(boots[pick, np.arange(n_boot)[:, None]], axis=1)  # (B,)
    lo, hi = np.nanpercentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def collect(records: list[dict[str, Any]]) -> dict[tuple[str, str, float], dict[int, dict[str, Any]]]:
    """Weighted-layer records by (task, upstream label, fraction) then seed; the latest wins."""
    table: dict[tuple[str, str, float], dict[int, dict[str, Any]]] = defaultdict(dict)
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
    return {"metric": metric, "mean": float(values.mean()), "seed_sd": float(values.std()), "lo": lo, "hi": hi, "n_seeds": len(recs)}


def effect(up: dict[int, dict[str, Any]], base: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Paired difference (upstream - baseline) of the headline metric over shared seeds."""
    seeds = sorted(set(up) & set(base))
    if not seeds:
        return None
    metric = up[seeds[0]]["headline_metric"]
    diff_values = [up[s]["metrics"][metric]["value"] - base[s]["metrics"][metric]["value"] for s in seeds]
    diffs = np.array([np.subtract(up[s]["bootstrap"][metric], base[s]["bootstrap"][metric]) for s in seeds])
    lo, hi = hierarchical_ci(diffs)
    return {"diff": float(np.mean(diff_values)), "lo": lo, "hi": hi, "excludes_zero": lo > 0 or hi < 0}


def _fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:.3f} ± {max(s['mean'] - s['lo'], s['hi'] - s['mean']):.3f}"


def write_leaderboard(table: dict, out_dir: Path) -> None:
    """results/leaderboard.md (best per column in bold) and leaderboard.csv (long format)."""
    tasks = sorted({t for t, _, _ in table})
    lines = ["# Leaderboard", "", "Mean over seeds ± half-width of the 95% CI (seeds and test resamples). Best per column in bold.", ""]
    rows_csv = []
    for task in tasks:
        fractions = sorted({f for t, _, f in table if t == task})
        labels = sorted({u for t, u, _ in table if t == task}, key=lambda u: (u.split("[")[0] != BASELINE, u))
        summaries = {(u, f): summarise(table[(task, u, f)]) for u in labels for f in fractions if (task, u, f) in table}
        metric = next(iter(summaries.values()))["metric"]
        lines += [f"## {task} ({metric})", "", "| upstream | " + " | ".join(f"{f:g}" for f in fractions) + " |",
                  "|---|" + "---|" * len(fractions)]
        best = {f: max((s["mean"] for (u, ff), s in summaries.items() if ff == f), default=None) for f in fractions}
        for u in labels:
            cells = []
            for f in fractions:
                s = summaries.get((u, f))
                cells.append("" if s is None else f"**{_fmt(s)}**" if s["mean"] == best[f] else _fmt(s))
                if s:
                    rows_csv.append([task, u, s["metric"], f, s["mean"], s["lo"], s["hi"], s["seed_sd"], s["n_seeds"]])
            lines.append(f"| {u} | " + " | ".join(cells) + " |")
        lines.append("")
    with atomic_write(out_dir / "leaderboard.md", "w") as f:
        f.write("\n".join(lines))
    with atomic_write(out_dir / "leaderboard.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "upstream", "metric", "fraction", "mean", "ci95_lo", "ci95_hi", "seed_sd", "n_seeds"])
        writer.writerows(rows_csv)


def write_plots(records: list[dict[str, Any]], table: dict, out_dir: Path) -> list[Path]:
    """low_data_<task>.png (metric vs fraction, CI bands, Mel dashed) and layers_<task>.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    written = []
    for task in sorted({t for t, _, _ in table}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for u in sorted({u for t, u, _ in table if t == task}):
            fractions = sorted(f for t, uu, f in table if t == task and uu == u)
            s = [summarise(table[(task, u, f)]) for f in fractions]
            style = "--" if u.split("[")[0] == BASELINE else "-"
            line, = ax.plot(fractions, [x["mean"] for x in s], style, marker="o", label=u)
            ax.fill_between(fractions, [x["lo"] for x in s], [x["hi"] for x in s], alpha=0.2, color=line.get_color())
        ax.set_xscale("log")
        all_fractions = sorted({f for t, _, f in table if t == task})
        ax.set_xticks(all_fractions, [f"{f:.0%}" if f >= 0.01 else f"{f:.1%}" for f in all_fractions])
        ax.minorticks_off()
        if len(all_fractions) == 1:  # a single point leaves a zero-width log axis that no layout can fit
            ax.set_xlim(all_fractions[0] / 2, all_fractions[0] * 2)
        ax.set_xlabel("label fraction of the training split")
        ax.set_ylabel(s[0]["metric"])
        ax.set_title(f"{task}: low-data curve (95% CI)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out_dir / f"low_data_{task}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    per_layer: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    layer_metric: dict[str, str] = {}
    for r in records:
        if r.get("layer") is not None:
            per_layer[r["task"]][upstream_label(r)][r["layer"]] = r["metrics"][r["headline_metric"]]["value"]
            layer_metric[r["task"]] = r["headline_metric"]
    for task, by_upstream in sorted(per_layer.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for u, values in sorted(by_upstream.items()):
            layers = sorted(values)
            ax.plot(layers, [values[k] for k in layers], marker="o", label=u)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
        ax.set_xlabel("layer (0 = input embedding)")
        ax.set_ylabel(layer_metric[task])
        ax.set_title(f"{task}: probe per layer (largest fraction, seed 0)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out_dir / f"layers_{task}.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def write_report(out_dir: Path) -> list[Path]:
    """Regenerate every table, plot and REPORT.md in `out_dir` from its runs.jsonl.

    Args:
        out_dir: the results folder.

    Returns:
        The files written.

    Raises:
        MelbenchError: there are no records.
    """
    from benchmark.report_text import write_report_md

    records = read_runs(out_dir / "runs.jsonl")
    if not records:
        raise MelbenchError(f"{out_dir / 'runs.jsonl'}: no probe runs recorded yet; run `melbench run` first")
    table = collect(records)
    write_leaderboard(table, out_dir)
    plots = write_plots(records, table, out_dir)
    write_report_md(records, table, out_dir)
    return [out_dir / "leaderboard.md", out_dir / "leaderboard.csv", *plots, out_dir / "REPORT.md"]
