"""Which records of a runs file describe the present inputs, and what the report says about the rest.

A runs file that a user keeps running into collects records made from older inputs: a manifest
edited since, an upstream whose code or checkpoint changed, another melbench revision. Tables
must not mix them, so for each task the report keeps the records of the latest dataset
fingerprint and the latest probe protocol (the grid and the linear probe's iterations, which
`tasks.yaml` sets), and for each (upstream, task) those of the latest code and checkpoint
fingerprints (latest = the newest record's); it says what it left out, and which rows were
made at which melbench revision when the kept records come from more than one.
"""

import json
from collections import Counter, defaultdict
from typing import Any

from benchmark.report.summary import upstream_label


def _short(value: Any) -> str:
    return str(value)[:12] if value else "none"


def _protocol(record: dict[str, Any]) -> str:
    """What of a record's probe settings `tasks.yaml` sets for its whole task (not its layer)."""
    probe = record.get("probe") or {}
    return json.dumps([record.get("probe_grid"), probe.get("kind"), probe.get("lbfgs_iters")], sort_keys=True)


def current_records(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records made from the latest inputs, and one line per thing left out or mixed.

    Args:
        records: every record of a runs file.

    Returns:
        (kept records in file order, Markdown lines; none when nothing was left out or mixed).
    """
    records = [r for r in records if not r.get("validation_only")]  # `melbench ablate` records: no test scores
    latest_data: dict[str, Any] = {}
    latest_protocol: dict[str, str] = {}
    latest_model: dict[tuple[str, str], tuple[Any, Any]] = {}
    for r in sorted(records, key=lambda r: r.get("date", "")):
        latest_data[r["task"]] = r.get("dataset_sha256")
        latest_protocol[r["task"]] = _protocol(r)
        latest_model[(upstream_label(r), r["task"])] = (r.get("code_sha256"), r.get("checkpoint_sha256"))
    kept, old_data, old_protocol, old_model = [], Counter(), Counter(), Counter()
    for r in records:
        if r.get("dataset_sha256") != latest_data[r["task"]]:
            old_data[r["task"]] += 1
        elif _protocol(r) != latest_protocol[r["task"]]:
            old_protocol[r["task"]] += 1
        elif (r.get("code_sha256"), r.get("checkpoint_sha256")) != latest_model[(upstream_label(r), r["task"])]:
            old_model[(upstream_label(r), r["task"])] += 1
        else:
            kept.append(r)
    notes = [f"- **{task}**: {n} record(s) of an older dataset fingerprint left out; the tables use the latest "
             f"(`{_short(latest_data[task])}`)." for task, n in sorted(old_data.items())]
    notes += [f"- **{task}**: {n} record(s) of an older probe protocol (grid or iterations of `tasks.yaml`) left "
              "out; the tables use the latest." for task, n in sorted(old_protocol.items())]
    notes += [f"- **{label} x {task}**: {n} record(s) of older upstream code or checkpoint left out; the tables use "
              f"code `{_short(latest_model[(label, task)][0])}`, checkpoint `{_short(latest_model[(label, task)][1])}`."
              for (label, task), n in sorted(old_model.items())]
    by_revision: dict[str, set[str]] = defaultdict(set)
    for r in kept:
        by_revision[r.get("git_revision") or "unknown"].add(f"{upstream_label(r)} x {r['task']}")
    if len(by_revision) > 1:
        notes.append(f"- The kept records come from {len(by_revision)} melbench revisions:")
        notes += [f"  - `{_short(rev)}{'+dirty' if rev.endswith('+dirty') else ''}`: {', '.join(sorted(rows))}"
                  for rev, rows in sorted(by_revision.items())]
    return kept, notes
