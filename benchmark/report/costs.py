"""REPORT.md's "where the time went": pretraining, extraction and probe minutes per upstream
and per task, from the times the records hold (so a reader sees what the run's minutes bought
without re-running it). Records copied from a bit-identical control (`same_features_as`) cost
nothing and are left out."""

from collections import defaultdict
from typing import Any

from benchmark.report.summary import is_control, is_snapshot, label_order, upstream_label

KINDS = ("model", "control", "snapshots")


def _kind(label: str) -> str:
    return "snapshots" if is_snapshot(label) else "control" if is_control(label) else "model"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def cost_lines(records: list[dict[str, Any]]) -> list[str]:
    """The section's markdown lines.

    Args:
        records: every run record of the report.

    Returns:
        Markdown lines (empty if no record holds its times).
    """
    run = [r for r in records if not r.get("same_features_as") and r.get("train_s") is not None]
    if not run:
        return []
    pretrain_s: dict[str, float] = {}  # upstream -> its full checkpoint's pretraining wall time
    extract_s: dict[tuple[str, str, str], float] = {}  # (upstream, label, task) -> extraction (or cache read)
    probe_s: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(KINDS, 0.0))  # upstream -> kind -> s
    by_task: dict[str, float] = defaultdict(float)
    for r in run:
        label = upstream_label(r)
        kind = _kind(label)
        prov = r.get("upstream_provenance") or {}
        if kind == "model" and prov.get("pretrain_s") is not None:
            pretrain_s[r["upstream"]] = float(prov["pretrain_s"])
        # a resumed pair's later records hold a cache read: the pair's cost is its largest
        pair = (r["upstream"], label, r["task"])
        extract_s[pair] = max(extract_s.get(pair, 0.0), float(r.get("extract_s") or 0.0))
        probe_s[r["upstream"]][kind] += r["train_s"]
        by_task[r["task"]] += r["train_s"]
    extract_by: dict[str, float] = defaultdict(float)
    for (upstream, _, _), seconds in extract_s.items():
        extract_by[upstream] += seconds
    lines = ["## Where the time went", "",
             "Minutes measured by the runs themselves: pretraining of each full checkpoint (its snapshots are part of "
             "it), feature extraction of each (upstream variant, task) pair (a cache read where another task's "
             "features serve), and probe fitting with the validation choice over the grid, for the model, its "
             "untrained control and its snapshots. Test scoring, data building and start-up are not in these "
             f"figures. {len(records) - len(run)} record(s) copied from a bit-identical control cost nothing.", "",
             "| upstream | pretraining | extraction | probes: model | probes: control | probes: snapshots |",
             "|---|---|---|---|---|---|"]
    for upstream in sorted(probe_s, key=label_order):
        kinds = probe_s[upstream]
        pre = _minutes(pretrain_s[upstream]) if upstream in pretrain_s else ""
        lines.append(f"| {upstream} | {pre} | {_minutes(extract_by[upstream])} | "
                     + " | ".join(_minutes(kinds[k]) if kinds[k] else "" for k in KINDS) + " |")
    total = sum(pretrain_s.values()) + sum(extract_s.values()) + sum(by_task.values())
    lines += ["", f"Probe minutes by task: {', '.join(f'{t} {_minutes(s)}' for t, s in sorted(by_task.items()))}. "
              f"All of the above: {_minutes(total)} minutes.", ""]
    return lines
