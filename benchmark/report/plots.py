"""The report's figures, drawn from runs.jsonl records alone: the summary heatmap, the low-data
curves, the per-layer probes and the pretraining-compute curves."""

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.report.summary import (
    Comparison, Table, is_baseline, is_control, is_snapshot, label_order, model_of, summarise,
    upstream_label,
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def line_colours(labels: list[str]) -> dict[str, Any]:
    """A colour per upstream for the figures' legends: a control takes its model's (it is drawn
    dotted), and the palette grows from 10 to 20 colours before any two models share one (the
    default run draws 13 lines: matplotlib's 10-colour cycle made e.g. `tera[random]` and `apc` alike).

    Args:
        labels: display names, `upstream_label`'s.

    Returns:
        Each label's matplotlib colour (RGBA).
    """
    from matplotlib import colormaps

    models = sorted({model_of(label) for label in labels}, key=label_order)
    palette = colormaps["tab10" if len(models) <= 10 else "tab20"]
    colour = {m: palette(i % palette.N) for i, m in enumerate(models)}  # beyond 20 models colours repeat
    return {label: colour[model_of(label)] for label in labels}


def write_plots(records: list[dict[str, Any]], table: Table, out_dir: Path) -> list[Path]:
    """low_data_<task>.png (metric vs fraction, CI bands, Mel dashed) and layers_<task>.png.

    Args:
        records: every run record.
        table: `collect(records)`.
        out_dir: the results folder.

    Returns:
        The files written.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    written = []
    for task in sorted({t for t, _, _ in table}):
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = sorted({u for t, u, _ in table if t == task and not is_snapshot(u)}, key=label_order)
        colours = line_colours(labels)
        for u in labels:
            fractions = sorted(f for t, uu, f in table if t == task and uu == u)
            s = [summarise(table[(task, u, f)]) for f in fractions]
            style = "--" if is_baseline(u) else ":" if is_control(u) else "-"
            ax.plot(fractions, [x["mean"] for x in s], style, marker="o", label=u, color=colours[u])
            ax.fill_between(fractions, [x["lo"] for x in s], [x["hi"] for x in s], alpha=0.2, color=colours[u])
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
        written.append(_save(plt, fig, out_dir / f"low_data_{task}.png"))
    per_layer: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    layer_metric: dict[str, str] = {}
    for r in records:
        if r.get("layer") is not None:
            per_layer[r["task"]][upstream_label(r)][r["layer"]] = r["metrics"][r["headline_metric"]]["value"]
            layer_metric[r["task"]] = r["headline_metric"]
    for task, by_upstream in sorted(per_layer.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        colours = line_colours(list(by_upstream))
        for u, values in sorted(by_upstream.items()):
            layers = sorted(values)
            ax.plot(layers, [values[k] for k in layers], ":" if is_control(u) else "-", marker="o", label=u,
                    color=colours[u])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are whole numbers
        ax.set_xlabel("layer (0 = input embedding)")
        ax.set_ylabel(layer_metric[task])
        ax.set_title(f"{task}: probe per layer (largest fraction, seed 0)")
        ax.legend(fontsize=8)
        written.append(_save(plt, fig, out_dir / f"layers_{task}.png"))
    return written


def write_summary_plot(comparisons: list[Comparison], out_dir: Path, fdr_q: float) -> Path | None:
    """summary.png: effect over Mel per upstream (rows) x task and label budget (columns).

    Args:
        comparisons: `summary.compare(table, fdr_q)`.
        out_dir: the results folder.
        fdr_q: the false-discovery rate of the significance marks (named in the title).

    Returns:
        The file, or None when there is nothing to compare.
    """
    if not comparisons:
        return None
    plt = _pyplot()
    columns = sorted({(c.task, c.budget.fraction) for c in comparisons})
    rows = sorted({c.label for c in comparisons}, key=label_order)
    grid = np.full((len(rows), len(columns)), np.nan)
    marks = {}
    for c in comparisons:
        i, j = rows.index(c.label), columns.index((c.task, c.budget.fraction))
        grid[i, j] = c.effect["diff"]
        marks[(i, j)] = c.significant
    limit = max(0.02, float(np.nanmax(np.abs(grid))))
    # 0.8 inch a column: a task name such as "instrument" fits under its cell at fontsize 7
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(columns) + 3), max(2.5, 0.45 * len(rows) + 1.8)))
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), significant in marks.items():
        ax.text(j, i, f"{grid[i, j]:+.2f}" + ("*" if significant else ""), ha="center", va="center", fontsize=7,
                fontweight="bold" if significant else "normal",
                color="white" if abs(grid[i, j]) > 0.6 * limit else "black")  # readable on dark cells
    budget_of = {(c.task, c.budget.fraction): c.budget for c in comparisons}
    ax.set_xticks(range(len(columns)), [f"{t}\n{' = '.join(f'{f:.0%}' for f in budget_of[(t, f0)].fractions)}"
                                        for t, f0 in columns], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for j in range(1, len(columns)):  # a line between tasks
        if columns[j][0] != columns[j - 1][0]:
            ax.axvline(j - 0.5, color="black", linewidth=1)
    fig.colorbar(image, ax=ax, label="learned - Mel (headline metric)")
    ax.set_title(f"Effect over Mel; * = significant after Benjamini-Hochberg (FDR {fdr_q * 100:g}%)", fontsize=9)
    return _save(plt, fig, out_dir / "summary.png", dpi=120)


def write_curve_plots(curves: dict[str, dict[str, dict[float, list[dict[str, Any]]]]], out_dir: Path) -> list[Path]:
    """pretraining_<task>.png: effect over Mel against hours of audio seen in pretraining, with
    95% CI bands, one line per (upstream, label fraction).

    Args:
        curves: `summary.compute_curves(table)`.
        out_dir: the results folder.

    Returns:
        The files written.
    """
    plt = _pyplot()
    written = []
    for task, by_upstream in sorted(curves.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        colours = line_colours(list(by_upstream))  # per upstream, not per line: two lines each would reuse them
        for name, by_fraction in sorted(by_upstream.items()):
            color = colours[name]
            for k, (fraction, points) in enumerate(sorted(by_fraction.items())):
                hours = [p["hours"] for p in points]
                ax.plot(hours, [p["diff"] for p in points], "-" if k == 0 else "--", marker="o", color=color,
                        label=f"{name}, {fraction:.0%} labels")
                ax.fill_between(hours, [p["lo"] for p in points], [p["hi"] for p in points], alpha=0.15,
                                color=color)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("hours of audio seen in pretraining (0 = untrained control)")
        ax.set_ylabel("effect over Mel (learned - Mel, headline metric)")
        ax.set_title(f"{task}: what pretraining compute buys (95% CI)")
        ax.legend(fontsize=7)
        written.append(_save(plt, fig, out_dir / f"pretraining_{task}.png"))
    return written
