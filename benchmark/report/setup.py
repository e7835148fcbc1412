"""REPORT.md's setup section, from the records alone: upstreams and their pretraining, tasks and
their split sizes, the probe protocol (grid and what was chosen), revisions and dates."""

from collections import Counter
from typing import Any

from benchmark.report.summary import Table, budgets, upstream_label


def _pretraining(prov: dict[str, Any] | None, snapshot_step: int | None) -> str:
    """One table row's worth of an upstream's `provenance`: how it was pretrained.

    Args:
        prov: the record's `upstream_provenance`.
        snapshot_step: the step of a compute-curve snapshot (None for a full checkpoint): its
            wall time is part of the full run's, not measured on its own.
    """
    if not prov:
        return "none | | | | |"
    if prov.get("random_init"):
        return f"untrained ({prov.get('preset')}) | {prov.get('params', 0) / 1e6:.2f} M | | | |"

    def fmt(key: str, pattern: str) -> str:
        return pattern.format(prov[key]) if prov.get(key) is not None else "?"

    corpus = f"{prov.get('corpus')}, {fmt('corpus_train_hours', '{:.2f}')} h"
    budget = f"{fmt('steps', '{}')} steps x {fmt('batch_size', '{}')} x {fmt('crop_s', '{:g}')} s"
    if snapshot_step is not None and prov.get("pretrain_s") is None:
        wall = "none (the control)" if snapshot_step == 0 else "within the full run's"
    else:
        wall = f"{fmt('pretrain_s', '{:.0f}')} s on {prov.get('device') or '?'}"
    return (f"{prov.get('preset')} | {prov.get('params', 0) / 1e6:.2f} M | {corpus} | {budget} | {wall} | "
            f"{fmt('final_val_loss', '{:.3f}')}")


def _layers_read(recs: list[dict[str, Any]]) -> str:
    """How one task's probes read the upstreams with several layers, from their records."""
    recs = [r for r in recs if r.get("layer") is None]  # not the per-layer sweep
    chosen = Counter(r["probe_choice"]["layer"] for r in recs if r["probe_choice"].get("layer") is not None)
    if chosen:
        return "chosen on validation: " + ", ".join(f"{layer} ({n})" for layer, n in sorted(chosen.items()))
    if any(len(r.get("layer_weights") or []) > 1 for r in recs):
        return "a learned weighted sum"
    return "one layer"


def _probe_protocol(records: list[dict[str, Any]]) -> list[str]:
    """The grid each task's probes were chosen from, how often each value won, and the layers read."""
    lines = ["Probe protocol: the linear probe is L2-regularised logistic regression fitted by L-BFGS (the MLP by "
             "Adam); its L2 strength (and the MLP's learning rate) is chosen per upstream, task, fraction and seed "
             "by the headline metric on the validation split, from one grid per task shared by every upstream; the "
             "test split is scored once, with the chosen probe. An upstream with several layers is read either "
             "one layer at a time, the layer chosen with the L2 strength on validation (`layer_choice: "
             "validation`), or through a softmax-weighted sum of its layers learned with the head (`weighted`); "
             "the last column says which, and how often each layer was chosen.", "",
             "| task | probe | L2 grid | chosen L2 (runs) | choices at the grid's edge | layers read (runs) |",
             "|---|---|---|---|---|---|"]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("probe_grid"):
            by_task.setdefault(r["task"], []).append(r)
    for task, recs in sorted(by_task.items()):
        grids = {tuple(r["probe_grid"]["l2"]) for r in recs}
        chosen = Counter(r["probe_choice"]["l2"] for r in recs)
        edge = sum(bool(r["probe_choice"]["at_edge"]) for r in recs)
        lines.append(f"| {task} | {recs[0]['probe']['kind']} | {' / '.join(', '.join(f'{v:g}' for v in g) for g in sorted(grids))} | "
                     f"{', '.join(f'{v:g} ({n})' for v, n in sorted(chosen.items()))} | {edge} of {len(recs)} | "
                     f"{_layers_read(recs)} |")
    return lines + [""] if by_task else []


def setup_lines(records: list[dict[str, Any]], table: Table) -> list[str]:
    """The setup section of REPORT.md.

    Args:
        records: every run record.
        table: `summary.collect(records)`.

    Returns:
        Markdown lines.
    """
    upstreams = {upstream_label(r): r for r in records}
    tasks: dict[str, dict[str, Any]] = {}
    for r in records:
        tasks.setdefault(r["task"], r)
    seeds = sorted({r["seed"] for r in records})
    lines = ["## Setup", "", "Upstreams and their self-supervised pretraining (by melbench, from `runs.jsonl`):", "",
             "| upstream | preset | params | pretraining corpus | budget | wall time | final val loss | checkpoint |",
             "|---|---|---|---|---|---|---|---|"]
    for label, r in sorted(upstreams.items()):
        ckpt = (r.get("checkpoint_sha256") or "none")[:12]
        lines.append(f"| {label} | {_pretraining(r.get('upstream_provenance'), r.get('pretrain_step'))} | {ckpt} |")
    lines += ["", "| task | dataset | headline metric | train / valid / test hours | test items (independent units) | "
              "label budgets |", "|---|---|---|---|---|---|"]
    task_budgets = budgets(table)
    for task, r in sorted(tasks.items()):
        hours = r.get("dataset_hours") or {}
        split_h = " / ".join(f"{hours[s]:.2f}" if s in hours else "?" for s in ("train", "valid", "test"))
        quick = " (quick build)" if r.get("quick") else ""
        units = f" ({r['n_test_units']})" if r.get("n_test_units") is not None else ""
        sizes = "; ".join(b.label() for b in task_budgets.get(task, []))
        lines.append(f"| {task} | {r['dataset']}{quick} | {r['headline_metric']} | {split_h} | {r['n_test_items']}{units} "
                     f"| {sizes} |")
    train_min = sum(r["train_s"] for r in records) / 60
    revisions = sorted({r["git_revision"][:12] + ("+dirty" if r["git_revision"].endswith("+dirty") else "") for r in records})
    dates = sorted(r["date"] for r in records)
    capped = sorted({f"{r['task']} ({r['max_train_rows']:,})" for r in records if r.get("max_train_rows")})
    lines += [
        "",
        f"Seeds {', '.join(map(str, seeds))} (a seed fixes the labelled subset, shared by all upstreams); fractions "
        "that gave the same subsets for every seed are one budget. Intervals resample the test split's independent "
        f"units (its split groups: recordings, pieces, sentences, presets) and the seeds. {len(records)} probe runs, "
        f"{train_min:.1f} min of probe training; runs from {dates[0]} to {dates[-1]}; melbench revision(s) "
        f"{', '.join(revisions)}.",
        "",
    ]
    if capped:
        lines += [f"Training rows capped per probe (a seeded uniform sample of the labelled subset's rows): "
                  f"{', '.join(capped)}.", ""]
    return lines + _probe_protocol(records)
