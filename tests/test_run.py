"""`melbench run` end to end on the demo task: records, resume after a kill, lock, report."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.errors import MelbenchError
from benchmark.report.summary import effect
from benchmark.report.write import write_report
from benchmark.runs import RunLog, read_runs

DEMO_TASKS = str(Path(__file__).parent / "demo_tasks.yaml")
RUN = ["run", "--upstreams", "mel,upstreams._template", "--tasks-file", DEMO_TASKS, "--quiet"]


def leaderboard(out: Path) -> list[list[str]]:
    with open(out / "leaderboard.csv") as f:
        return list(csv.reader(f))


def test_run_writes_records_tables_and_plots_then_skips_done(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    assert main([*RUN, "--out", str(out)]) == 0
    assert "min left] upstream 2/2" in capsys.readouterr().out  # estimated from Mel, run whole
    records = read_runs(out / "runs.jsonl")
    # demo: 2 fractions x 3 seeds per upstream, plus a probe per layer for the 2-layer template.
    assert len(records) == 2 * 6 + 2
    r = records[0]
    for key in ("upstream", "upstream_options", "checkpoint_sha256", "task", "fraction", "seed", "metrics",
                "probe", "train_s", "extract_s", "git_revision", "date", "n_train_items"):
        assert key in r
    assert set(r["metrics"]) == {"accuracy", "macro_f1"}
    lo, hi = r["metrics"]["accuracy"]["ci95"]
    assert lo <= r["metrics"]["accuracy"]["value"] <= hi
    for name in ("leaderboard.md", "leaderboard.csv", "low_data_demo.png", "layers_demo.png", "REPORT.md"):
        assert (out / name).stat().st_size > 0
    report = (out / "REPORT.md").read_text()
    assert "Effect over Mel" in report and "upstreams._template" in report
    before = (out / "runs.jsonl").read_bytes()
    assert main([*RUN, "--out", str(out)]) == 0
    assert (out / "runs.jsonl").read_bytes() == before  # everything was already done
    assert "min left" not in capsys.readouterr().out  # no estimate from upstreams found finished


def test_kill_and_resume_gives_the_same_tables(tmp_path: Path, melbench_home: Path) -> None:
    run_mel = ["run", "--upstreams", "mel", "--tasks-file", DEMO_TASKS, "--quiet"]  # 2 fractions x 3 seeds
    reference = tmp_path / "reference"
    assert main([*run_mel, "--out", str(reference)]) == 0
    out = tmp_path / "killed"
    env = {**os.environ, "MELBENCH_HOME": str(tmp_path / "home2")}
    cmd = [sys.executable, "-m", "benchmark", *run_mel, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_runs(out / "runs.jsonl")) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(read_runs(out / "runs.jsonl"))
    assert 2 <= n_before < 6, "the kill should land mid-run"
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{6 - n_before} probe runs, {n_before} already done" in resumed.stdout
    assert leaderboard(out) == leaderboard(reference)


def test_torn_line_is_dropped_and_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps({"run_id": "a"}) + "\n" + '{"run_id": "b", "metr')
    assert [r["run_id"] for r in read_runs(path)] == ["a"]
    with RunLog(tmp_path) as log:
        assert log.done == {"a"}
        assert path.read_text().endswith("}\n")
        with pytest.raises(MelbenchError, match="another melbench run is writing here"):
            RunLog(tmp_path)
        log.append({"run_id": "c"})
    assert [r["run_id"] for r in read_runs(path)] == ["a", "c"]


def fake_record(upstream: str, seed: int, value: float, boot_shift: float) -> dict:
    rng = np.random.default_rng(seed)
    boot = (value + boot_shift + rng.normal(0, 0.01, 200)).tolist()
    return {
        "run_id": f"{upstream}{seed}", "upstream": upstream, "upstream_options": {}, "checkpoint_sha256": None,
        "task": "t", "dataset": "d", "quick": False, "fraction": 0.1, "seed": seed, "layer": None,
        "headline_metric": "accuracy", "metrics": {"accuracy": {"value": value, "ci95": [value - 0.02, value + 0.02]}},
        "bootstrap": {"accuracy": boot}, "n_test_items": 100, "train_s": 1.0, "git_revision": "abc", "date": "2026-01-01",
    }


def test_report_from_a_small_runs_file(tmp_path: Path) -> None:
    records = [fake_record("mel", s, 0.70, 0) for s in range(3)]
    records += [fake_record("better", s, 0.80, 0) for s in range(3)]
    records += [fake_record("same", s, 0.70 + 0.001 * (s - 1), 0) for s in range(3)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "| better | **0.800 ±" in md
    report = (tmp_path / "REPORT.md").read_text()
    assert "better in **1**, worse in **0**, no clear difference in 1 (uncorrected 95% CIs: 1 / 0 / 1)" in report
    by_seed = lambda name: {r["seed"]: r for r in records if r["upstream"] == name}  # noqa: E731
    e = effect(by_seed("better"), by_seed("mel"))
    assert e["diff"] == pytest.approx(0.1) and e["lo"] > 0.05 and e["excludes_zero"]
    assert not effect(by_seed("same"), by_seed("mel"))["excludes_zero"]


def test_run_rejects_bad_arguments(capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--tasks", "nope"]) == 2
    assert "unknown task 'nope'; known: phones, instrument, pitch, tagging, key, genre" in capsys.readouterr().err
    assert main(["run", "--upstreams", "nope", "--tasks-file", DEMO_TASKS]) == 2
    assert "unknown upstream 'nope'" in capsys.readouterr().err
    assert main(["run", "--fractions", "0,2"]) == 2
    assert "each must be in (0, 1]" in capsys.readouterr().err
