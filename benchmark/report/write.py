"""`melbench report`: tables, plots and REPORT.md, regenerated from runs.jsonl alone.

Confidence intervals combine both sources of variation: for each bootstrap replicate b (a
resample of the test split's independent units, the same for every upstream) the seeds are
resampled with replacement and their replicate-b metrics averaged; the 2.5th and 97.5th
percentiles over b form the 95% interval (`benchmark.report.summary`). Effects over the Mel
baseline are computed the same way on per-seed, per-replicate differences, which are paired:
the same seed gives the same labelled subset and the same replicate the same test resample.
Columns are label budgets: fractions that gave the same subsets for every seed are one column.
"""

import csv
from pathlib import Path
from typing import Any


from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError
from benchmark.report.provenance import current_records
from benchmark.report.summary import Table, budgets, collect, compare, compute_curves, label_order, summarise
from benchmark.runs import read_runs
from benchmark.tasks import ReportSpec

def _fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:.3f} ± {max(s['mean'] - s['lo'], s['hi'] - s['mean']):.3f}"


def write_leaderboard(table: Table, out_dir: Path) -> None:
    """results/leaderboard.md (best per column in bold) and leaderboard.csv (long format)."""
    lines = ["# Leaderboard", "", "Mean over seeds ± half-width of the 95% CI (seeds and test resamples). Best per column "
             "in bold. A column is a label budget: the fractions that gave it and the labelled items (hours) it holds.", ""]
    rows_csv = []
    for task, task_budgets in sorted(budgets(table).items()):
        labels = sorted({u for t, u, _ in table if t == task}, key=label_order)
        summaries = {(u, b.fraction): summarise(table[(task, u, b.fraction)])
                     for u in labels for b in task_budgets if (task, u, b.fraction) in table}
        metric = next(iter(summaries.values()))["metric"]
        lines += [f"## {task} ({metric})", "", "| upstream | " + " | ".join(b.label() for b in task_budgets) + " |",
                  "|---|" + "---|" * len(task_budgets)]
        best = {b.fraction: max((s["mean"] for (u, f), s in summaries.items() if f == b.fraction), default=None)
                for b in task_budgets}
        for u in labels:
            cells = []
            for b in task_budgets:
                s = summaries.get((u, b.fraction))
                cells.append("" if s is None else f"**{_fmt(s)}**" if s["mean"] == best[b.fraction] else _fmt(s))
                if s:
                    rows_csv.append([task, u, s["metric"], "/".join(f"{f:g}" for f in b.fractions), b.n_items,
                                     s["mean"], s["lo"], s["hi"], s["seed_sd"], s["n_seeds"]])
            lines.append(f"| {u} | " + " | ".join(cells) + " |")
        lines.append("")
    with atomic_write(out_dir / "leaderboard.md", "w") as f:
        f.write("\n".join(lines))
    with atomic_write(out_dir / "leaderboard.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "upstream", "metric", "fractions", "n_train_items", "mean", "ci95_lo", "ci95_hi",
                         "seed_sd", "n_seeds"])
        writer.writerows(rows_csv)


def write_report(out_dir: Path, spec: ReportSpec = ReportSpec()) -> list[Path]:
    """Regenerate every table, plot and REPORT.md in `out_dir` from its runs.jsonl.

    Args:
        out_dir: the results folder.
        spec: how effects become verdicts (`report:` in `tasks.yaml`).

    Returns:
        The files written.

    Raises:
        MelbenchError: there are no records.
    """
    from benchmark.report.plots import write_curve_plots, write_plots, write_summary_plot
    from benchmark.report.text import write_report_md

    records, provenance = current_records(read_runs(out_dir / "runs.jsonl"))
    if not records:
        raise MelbenchError(f"{out_dir / 'runs.jsonl'}: no probe runs recorded yet; run `melbench run` first")
    table = collect(records)
    comparisons = compare(table, spec.fdr_q)
    write_leaderboard(table, out_dir)
    summary = write_summary_plot(comparisons, out_dir, spec.fdr_q)
    plots = [*([summary] if summary else []), *write_plots(records, table, out_dir),
             *write_curve_plots(compute_curves(table), out_dir)]
    write_report_md(records, table, comparisons, out_dir, spec, provenance)
    return [out_dir / "leaderboard.md", out_dir / "leaderboard.csv", *plots, out_dir / "REPORT.md"]
