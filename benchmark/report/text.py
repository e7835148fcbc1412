"""REPORT.md: the question, a generated plain-language answer and the summary figure, then the
corrected verdicts, the low-data interaction, the controls, the pretraining-compute curve and
the setup, all generated from runs.jsonl records."""

from collections import Counter
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write
from benchmark.report.costs import cost_lines
from benchmark.report.power import power_lines
from benchmark.report.setup import setup_lines
from benchmark.tasks import ReportSpec
from benchmark.report.summary import (
    Comparison, Table, budgets, compute_curves, effect, identical_controls, interaction, is_baseline,
    is_control, model_of,
)

QUESTION = (
    "Does a transformer pretrained self-supervised on Mel spectrograms give a better "
    "representation than the spectrogram itself, especially when labels are scarce?"
)


def _ci(e: dict[str, Any], key: str = "diff") -> str:
    return f"{e[key]:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}]"


def _pct(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else f"{fraction:.1%}"


def _counts(comps: list[Comparison]) -> tuple[Counter, Counter]:
    corrected = Counter(c.verdict for c in comps)
    raw = Counter("no clear difference" if not c.effect["excludes_zero"] else
                  "better" if c.effect["diff"] > 0 else "worse" for c in comps)
    return corrected, raw


def _count_text(comps: list[Comparison]) -> str:
    corrected, raw = _counts(comps)
    return (f"better in **{corrected['better']}**, worse in **{corrected['worse']}**, no clear difference in "
            f"{corrected['no clear difference']} (uncorrected 95% CIs: {raw['better']} / {raw['worse']} / "
            f"{raw['no clear difference']})")


def interactions(table: Table) -> list[dict[str, Any]]:
    """Per (upstream or control, each group of identical controls once; task): the effect over Mel at the
    smallest budget minus at the largest."""
    found, repeats = [], identical_controls(table)
    for task, task_budgets in sorted(budgets(table).items()):
        if len(task_budgets) < 2:
            continue
        small, large = task_budgets[0], task_budgets[-1]
        base = next((u for t, u, _ in table if t == task and is_baseline(u)), None)
        labels = {u for t, u, _ in table if t == task}
        for u in sorted(u for u in labels if not is_baseline(u) and "[step=" not in u and u not in repeats):
            if base is None:
                continue
            cells = [table.get((task, label, b.fraction), {}) for label in (u, base) for b in (small, large)]
            i = interaction(cells[0], cells[2], cells[1], cells[3])
            if i is not None:
                found.append({"task": task, "label": u, "small_budget": small.fraction,
                              "large_budget": large.fraction, **i})
    return found


def _interaction_sentence(i: dict[str, Any]) -> str:
    lo, hi = i["lo"], i["hi"]
    where = f"from {i['large']:+.3f} at {_pct(i['large_budget'])} to {i['small']:+.3f} at {_pct(i['small_budget'])} labels"
    ci = f"change {i['change']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    if lo <= 0 <= hi:
        return f"on {i['task']}, {i['label']} - Mel goes {where}: no measurable change ({ci})."
    towards = "the learned features" if i["change"] > 0 else "Mel"
    return f"on {i['task']}, {i['label']} - Mel goes {where}: fewer labels favour {towards} ({ci})."


def _wins(c: Comparison, spec: ReportSpec) -> bool:
    """A significant advantage of at least the report's `min_effect`."""
    return c.significant and c.effect["diff"] >= spec.min_effect


def _everywhere_text(scarce: list[Comparison], spec: ReportSpec) -> str:
    """The upstream(s) with a win (`_wins`) at every scarce budget of the most tasks."""
    held: dict[str, set[str]] = {}
    for label, task in {(c.label, c.task) for c in scarce}:
        cells = [c for c in scarce if c.label == label and c.task == task]
        if all(_wins(c, spec) for c in cells):
            held.setdefault(label, set()).add(task)
    if not held:
        return "no upstream holds it at every scarce budget of any task"
    most = max(len(t) for t in held.values())
    best = sorted(f"{label} ({', '.join(sorted(t))})" for label, t in held.items() if len(t) == most)
    return f"at every scarce budget of a task, one upstream holds it on at most {most} task(s): {'; '.join(best)}"


def _answer(comps: list[Comparison], inter: list[dict[str, Any]], spec: ReportSpec) -> list[str]:
    """The 3-6 generated sentences of the plain-language answer."""
    learned = [c for c in comps if not is_control(c.label)]
    if not learned:
        return ["No pretrained upstream was compared with the Mel baseline in these runs, so there is no answer yet."]
    tasks = sorted({c.task for c in learned})
    scarce = [c for c in learned if c.budget.scarce]
    out = [f"Across {len(learned)} comparisons of {len({c.label for c in learned})} learned upstream(s) with Mel on "
           f"{len(tasks)} task(s) and every distinct label budget, after Benjamini-Hochberg correction (false-discovery "
           f"rate {spec.fdr_q * 100:g}%) the learned features were {_count_text(learned)}."]
    if scarce:
        limits = {c.budget.scarce_fraction for c in scarce}
        at_most = _pct(limits.pop()) if len(limits) == 1 else "each task's scarce_fraction"
        out.append(f"With scarce labels (budgets of at most {at_most} of the training split) they were "
                   f"{_count_text(scarce)}.")
        best = max(scarce, key=lambda c: c.effect["diff"])
        worst = min(scarce, key=lambda c: c.effect["diff"])
        out.append(f"The largest scarce-label effect is {best.label} on {best.task} at {_pct(best.budget.fraction)} "
                   f"({_ci(best.effect)}), the most negative {worst.label} on {worst.task} at "
                   f"{_pct(worst.budget.fraction)} ({_ci(worst.effect)}).")
        wins = {c.task for c in scarce if _wins(c, spec)}
        out.append(f"A significant advantage of at least {spec.min_effect:g} with scarce labels holds on {len(wins)} "
                   f"of {len(tasks)} task(s){': ' + ', '.join(sorted(wins)) if wins else ''}; "
                   f"{_everywhere_text(scarce, spec)}.")
    grows = [i for i in inter if not is_control(i["label"]) and i["lo"] > 0]
    shrinks = [i for i in inter if not is_control(i["label"]) and i["hi"] < 0]
    n_inter = len([i for i in inter if not is_control(i["label"])])
    if n_inter:
        out.append(f"Does the advantage grow as labels shrink? In {len(grows)} of {n_inter} (upstream, task) pairs the "
                   f"effect at the smallest budget exceeds the effect at the largest (95% CI of the change above "
                   f"zero), in {len(shrinks)} it falls, in the rest there is no measurable change.")
    controls = [c for c in comps if is_control(c.label)]
    if controls:
        out.append(f"Untrained controls (same architecture, random weights) against Mel: {_count_text(controls)}.")
    return out[:6]


def _effects_tables(table: Table, comps: list[Comparison]) -> list[str]:
    lines = []
    by_key = {(c.task, c.label, c.budget.fraction): c for c in comps}
    for task, task_budgets in sorted(budgets(table).items()):
        labels = sorted({c.label for c in comps if c.task == task}, key=lambda u: (is_control(u), u))
        if not labels:
            continue
        lines += [f"### {task}", "", "| upstream | " + " | ".join(b.label() for b in task_budgets) + " |",
                  "|---|" + "---|" * len(task_budgets)]
        for u in labels:
            cells = []
            for b in task_budgets:
                c = by_key.get((task, u, b.fraction))
                mark = "" if c is None or not c.significant else " ▲" if c.effect["diff"] > 0 else " ▼"
                cells.append("" if c is None else f"{_ci(c.effect)} p={c.effect['p']:.3g}{mark}")
            lines.append(f"| {u} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _repeated_controls(table: Table) -> list[str]:
    """One line per group of bit-identical controls, which the comparisons count once."""
    groups: dict[str, list[str]] = {}
    for repeat, kept in identical_controls(table).items():
        groups.setdefault(kept, []).append(repeat)
    return [f"{', '.join(sorted(repeats))} gave exactly the results of {kept} in every probe run (the same encoder, "
            f"sizes and initial weights): the comparisons count them once, as {kept}.\n"
            for kept, repeats in sorted(groups.items())]


def _controls(table: Table) -> list[str]:
    """Architecture (random - Mel) and pretraining (pretrained - random) per task and budget."""
    rows = []
    for task, task_budgets in sorted(budgets(table).items()):
        base = next((u for t, u, _ in table if t == task and is_baseline(u)), None)
        for control in sorted({u for t, u, _ in table if t == task and is_control(u)}):
            model = model_of(control)
            for b in task_budgets:
                arch = effect(table.get((task, control, b.fraction), {}), table.get((task, base, b.fraction), {}))
                gain = effect(table.get((task, model, b.fraction), {}), table.get((task, control, b.fraction), {}))
                if arch and gain:
                    rows.append(f"| {task} | {model} | {_pct(b.fraction)} | {_ci(arch)} | {_ci(gain)} |")
    if not rows:
        return []
    return ["## What the architecture gives and what pretraining gives", "",
            "Each self-supervised upstream is also probed untrained (`NAME[random]`: the same architecture, initial "
            "weights and corpus input statistics, step 0 of its pretraining). Uncorrected 95% CIs.", "",
            "| task | upstream | labels | architecture (random - Mel) | pretraining (pretrained - random) |",
            "|---|---|---|---|---|", *rows, ""]


def _curves(table: Table) -> list[str]:
    curves = compute_curves(table)
    rows = [f"| {task} | {name} | {_pct(fraction)} | " + "; ".join(
                f"{p['hours']:.2f} h: {p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]" for p in points) + " |"
            for task, by_upstream in sorted(curves.items()) for name, by_fraction in sorted(by_upstream.items())
            for fraction, points in sorted(by_fraction.items())]
    if not rows:
        return []
    return ["## The pretraining-compute curve", "",
            "Effect over Mel [95% CI] of checkpoints kept along pretraining (0 h = the untrained control), against "
            "hours of audio seen (steps x batch x crop); figures `pretraining_<task>.png`.", "",
            "| task | upstream | labels | points (audio seen: effect) |", "|---|---|---|---|", *rows, ""]


def write_report_md(records: list[dict[str, Any]], table: Table, comps: list[Comparison], out_dir: Path,
                    spec: ReportSpec = ReportSpec(), provenance: list[str] = ()) -> Path:
    """Write REPORT.md.

    Args:
        records: the run records the tables use.
        table: `summary.collect(records)`.
        comps: `summary.compare(table, spec.fdr_q)`.
        out_dir: the results folder.
        spec: the report's settings (false-discovery rate, smallest effect counted as a win).
        provenance: lines on records left out or mixed (`provenance.current_records`).

    Returns:
        The file written.
    """
    inter = interactions(table)
    lines = ["# melbench report", "", f"**Question.** {QUESTION}", ""]
    if (out_dir / "summary.png").exists():
        lines += ["![effect over Mel per upstream, task and label budget](summary.png)", ""]
    lines += ["## Answer", "", " ".join(_answer(comps, inter, spec)), ""]
    lines += ["## Does the advantage grow as labels shrink?", "",
              "Effect over Mel at the smallest label budget minus the effect at the largest, paired by seed and "
              "test resample [95% CI]:", ""]
    lines += [f"- {_interaction_sentence(i)}" for i in inter] or ["- No task has two label budgets."]
    lines += ["", "## Effect over Mel per task", "",
              f"Learned - Mel, mean over seeds [95% CI], uncorrected p; ▲/▼ = significant after Benjamini-Hochberg at "
              f"FDR {spec.fdr_q * 100:g}% over all {len(comps)} comparisons (learned better / Mel better).", ""]
    lines += _repeated_controls(table)
    lines += _effects_tables(table, comps) + power_lines(comps, spec) + _controls(table) + _curves(table)
    if provenance:
        lines += ["## Provenance", "", *provenance, ""]
    lines += setup_lines(records, table) + cost_lines(records)
    lines += ["Tables: `leaderboard.md` / `leaderboard.csv`; figures: `summary.png`, `low_data_<task>.png`, "
              "`layers_<task>.png`, `pretraining_<task>.png`. Everything here is regenerated from `runs.jsonl` by "
              "`melbench report`.", ""]
    path = out_dir / "REPORT.md"
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines))
    return path
