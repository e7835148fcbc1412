"""REPORT.md: the question, the setup and the answer with effect sizes over the Mel baseline."""

from collections import Counter
from pathlib import Path
from typing import Any

from benchmark.atomic import atomic_write
from benchmark.report import BASELINE, effect, summarise, upstream_label

QUESTION = (
    "Does a transformer pretrained self-supervised on Mel spectrograms give a better "
    "representation than the spectrogram itself, especially when labels are scarce?"
)


def _verdict(e: dict[str, Any]) -> str:
    if not e["excludes_zero"]:
        return "no clear difference"
    return "better than Mel" if e["diff"] > 0 else "worse than Mel"


def _pretraining(prov: dict[str, Any] | None) -> str:
    """One table row's worth of an upstream's `provenance`: how it was pretrained."""
    if not prov:
        return "none | | | | |"
    if prov.get("random_init"):
        return f"untrained ({prov.get('preset')}) | {prov.get('params', 0) / 1e6:.2f} M | | | |"

    def fmt(key: str, pattern: str) -> str:
        return pattern.format(prov[key]) if prov.get(key) is not None else "?"

    corpus = f"{prov.get('corpus')}, {fmt('corpus_train_hours', '{:.2f}')} h"
    budget = f"{fmt('steps', '{}')} steps x {fmt('batch_size', '{}')} x {fmt('crop_s', '{:g}')} s"
    wall = f"{fmt('pretrain_s', '{:.0f}')} s on {prov.get('device') or '?'}"
    return (f"{prov.get('preset')} | {prov.get('params', 0) / 1e6:.2f} M | {corpus} | {budget} | {wall} | "
            f"{fmt('final_val_loss', '{:.3f}')}")


def _setup(records: list[dict[str, Any]]) -> list[str]:
    upstreams = {}
    for r in records:
        upstreams[upstream_label(r)] = r
    tasks = {}
    for r in records:
        tasks.setdefault(r["task"], r)
    fractions = sorted({r["fraction"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    lines = ["## Setup", "", "Upstreams and their self-supervised pretraining (by melbench, from `runs.jsonl`):", "",
             "| upstream | preset | params | pretraining corpus | budget | wall time | final val loss | checkpoint |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in sorted(upstreams.items()):
        ckpt = (r.get("checkpoint_sha256") or "none")[:12]
        lines.append(f"| {label} | {_pretraining(r.get('upstream_provenance'))} | {ckpt} |")
    lines += ["", "| task | dataset | headline metric | train / valid / test hours | test items |", "|---|---|---|---|---|"]
    for task, r in sorted(tasks.items()):
        hours = r.get("dataset_hours") or {}
        split_h = " / ".join(f"{hours[s]:.2f}" if s in hours else "?" for s in ("train", "valid", "test"))
        quick = " (quick build)" if r.get("quick") else ""
        lines.append(f"| {task} | {r['dataset']}{quick} | {r['headline_metric']} | {split_h} | {r['n_test_items']} |")
    train_min = sum(r["train_s"] for r in records) / 60
    revisions = sorted({r["git_revision"][:12] + ("+dirty" if r["git_revision"].endswith("+dirty") else "") for r in records})
    dates = sorted(r["date"] for r in records)
    capped = sorted({f"{r['task']} ({r['max_train_rows']:,})" for r in records if r.get("max_train_rows")})
    lines += [
        "",
        f"Label fractions {', '.join(f'{f:g}' for f in fractions)}; seeds {', '.join(map(str, seeds))} "
        f"(a seed fixes the labelled subset, shared by all upstreams). {len(records)} probe runs, "
        f"{train_min:.1f} min of probe training; runs from {dates[0]} to {dates[-1]}; melbench revision(s) "
        f"{', '.join(revisions)}.",
        "",
    ]
    if capped:
        lines += [f"Training rows capped per probe (a seeded uniform sample of the labelled subset's rows): "
                  f"{', '.join(capped)}.", ""]
    return lines


def write_report_md(records: list[dict[str, Any]], table: dict, out_dir: Path) -> Path:
    """Write REPORT.md.

    Args:
        records: every run record.
        table: `report.collect(records)`.
        out_dir: the results folder.

    Returns:
        The file written.
    """
    lines = ["# melbench report", "", f"**Question.** {QUESTION}", ""]
    verdicts: Counter = Counter()
    low_data: Counter = Counter()
    answer: list[str] = []
    for task in sorted({t for t, _, _ in table}):
        fractions = sorted({f for t, _, f in table if t == task})
        learned = sorted({u for t, u, _ in table if t == task and u.split("[")[0] != BASELINE})
        base_label = next((u for t, u, _ in table if t == task and u.split("[")[0] == BASELINE), None)
        metric = summarise(next(v for k, v in table.items() if k[0] == task))["metric"]
        answer += [f"### {task} ({metric})", ""]
        if base_label is None or not learned:
            answer += ["No comparison: this task lacks the Mel baseline or a learned upstream.", ""]
            continue
        answer += ["Effect over Mel (learned - Mel), mean over seeds [95% CI]:", "",
                   "| upstream | " + " | ".join(f"{f:g}" for f in fractions) + " |", "|---|" + "---|" * len(fractions)]
        for u in learned:
            cells = []
            for f in fractions:
                e = effect(table.get((task, u, f), {}), table.get((task, base_label, f), {}))
                if e is None:
                    cells.append("")
                    continue
                verdict = _verdict(e)
                verdicts[verdict] += 1
                if f <= 0.05:
                    low_data[verdict] += 1
                mark = {"better than Mel": " ▲", "worse than Mel": " ▼"}.get(verdict, "")
                cells.append(f"{e['diff']:+.3f} [{e['lo']:+.3f}, {e['hi']:+.3f}]{mark}")
            answer.append(f"| {u} | " + " | ".join(cells) + " |")
        answer.append("")
    total = sum(verdicts.values())
    lines += ["## Answer", ""]
    if total == 0:
        lines += ["No learned upstream was compared with the Mel baseline in these runs, so there is no answer yet.", ""]
    else:
        lines += [
            f"Over {total} (learned upstream, task, label fraction) comparisons with the Mel baseline, a learned "
            f"upstream was **better in {verdicts['better than Mel']}**, **worse in {verdicts['worse than Mel']}** and "
            f"not distinguishable in {verdicts['no clear difference']} (95% CI of the paired difference excludes zero "
            f"or not).",
            "",
        ]
        n_low = sum(low_data.values())
        if n_low:
            lines += [
                f"With scarce labels (fractions ≤ 5%): better in {low_data['better than Mel']}, worse in "
                f"{low_data['worse than Mel']}, not distinguishable in {low_data['no clear difference']} of {n_low}.",
                "",
            ]
        lines += ["▲ = CI above zero (learned better), ▼ = CI below zero (Mel better).", ""]
    lines += answer + _setup(records)
    lines += ["Tables: `leaderboard.md` / `leaderboard.csv`; curves: `low_data_<task>.png`; per-layer probes: "
              "`layers_<task>.png`. Everything here is regenerated from `runs.jsonl` by `melbench report`.", ""]
    path = out_dir / "REPORT.md"
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines))
    return path
