"""The results kept in the repository are what `melbench report` makes of their records: in
`results/` and in every folder under it that keeps records, the tables and REPORT.md are
regenerated from that folder's `runs.jsonl.xz` (the records, compressed to stay small in git)
byte for byte; a merged folder `results/ssl_N/` holds exactly the records the report uses of
every `results/<upstream>_N/` folder (`scripts/merge_runs.py`); and the probe each kept record names is the one melbench runs
now for that record's `layer_choice`, so a run with the same tasks file skips it."""

import json
import lzma
from dataclasses import asdict
from pathlib import Path

import pytest

from _scripts import load_script
from benchmark.report.provenance import current_records
from benchmark.report.write import write_report
from benchmark.run import _probe_config, _probe_grid
from benchmark.tasks import DEFAULT_TASKS_FILE, load_report_spec, load_tasks

RESULTS = Path(__file__).resolve().parents[1] / "results"
TEXT = ("REPORT.md", "leaderboard.md", "leaderboard.csv")
KEPT = sorted(RESULTS.rglob("runs.jsonl.xz"))
MERGED = sorted(p for p in KEPT if p.parent.name.startswith("ssl_"))


def _lines(kept: Path) -> list[bytes]:
    return lzma.decompress(kept.read_bytes()).splitlines()


def test_the_default_run_is_kept() -> None:
    assert (RESULTS / "runs.jsonl.xz") in KEPT, "results/runs.jsonl.xz, the default run's records, is missing"


@pytest.mark.parametrize("kept", KEPT, ids=[str(p.parent.relative_to(RESULTS.parent)) for p in KEPT])
def test_the_kept_results_are_generated_from_the_kept_records(kept: Path, tmp_path: Path) -> None:
    folder = kept.parent
    (tmp_path / "runs.jsonl").write_bytes(lzma.decompress(kept.read_bytes()))
    written = write_report(tmp_path, load_report_spec())  # the settings `melbench run` reads
    for name in TEXT:
        assert (tmp_path / name).read_text() == (folder / name).read_text(), f"{folder / name} is stale"
    assert sorted(p.name for p in written if p.suffix == ".png") == sorted(p.name for p in folder.glob("*.png"))


@pytest.mark.parametrize("merged", MERGED, ids=[p.parent.name for p in MERGED])
def test_a_merged_folder_holds_exactly_its_sources_records(merged: Path) -> None:
    """`results/ssl_N/` is what `scripts/merge_runs.py` makes of every `results/<upstream>_N/`
    folder: the records its report uses, each probe run once."""
    steps = merged.parent.name.removeprefix("ssl_")
    sources = [p.parent for p in KEPT if p.parent.name.endswith(f"_{steps}") and p != merged]
    assert len(sources) >= 2, f"{merged.parent} merges fewer than two folders ending in _{steps}"
    script = load_script("merge_runs")
    lines = [line.decode() for line in _lines(merged)]
    expected = script.merged_records(sources)
    missing, extra = len(set(expected) - set(lines)), len(set(lines) - set(expected))
    assert not (missing or extra) and len(lines) == len(expected), \
        f"{merged}: {missing} source records missing, {extra} from no source; run scripts/merge_runs.py"
    # independently of the script: every probe run a source's report uses is there exactly once
    ids = [json.loads(line)["run_id"] for line in lines]
    used = {r["run_id"] for source in sources
            for r in current_records([json.loads(line) for line in _lines(source / "runs.jsonl.xz")])[0]}
    assert len(ids) == len(set(ids)) and set(ids) == used, f"{merged}: not the sources' current records, once each"


@pytest.mark.parametrize("kept", KEPT, ids=[str(p.parent.relative_to(RESULTS.parent)) for p in KEPT])
def test_the_kept_records_name_the_probe_melbench_runs_for_their_layer_choice(kept: Path, tmp_path: Path) -> None:
    """Records made before the layer choice (no `layer_choice` in their grid) match `layer_choice:
    weighted`; the others the default tasks file."""
    text = DEFAULT_TASKS_FILE.read_text()
    weighted = tmp_path / "tasks.yaml"
    weighted.write_text(text.replace("layer_choice: validation", "layer_choice: weighted"))
    assert weighted.read_text() != text, "tasks.yaml no longer sets layer_choice: validation"
    specs = {"weighted": load_tasks(weighted), "validation": load_tasks()}
    current, _ = current_records([json.loads(line) for line in _lines(kept)])
    for r in current:
        spec = specs[r["probe_grid"].get("layer_choice", "weighted")][r["task"]]
        made_now = json.loads(json.dumps({"probe": asdict(_probe_config(spec, r["layer"])),
                                          "probe_grid": _probe_grid(spec).record()}))
        assert made_now == {"probe": r["probe"], "probe_grid": r["probe_grid"]}, f"{kept}: {r['run_id']}"
