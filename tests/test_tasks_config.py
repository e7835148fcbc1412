"""`tasks.yaml` and typed overrides: types checked, unknown keys rejected with their line."""

import pytest
from pathlib import Path

from benchmark.config import build_config, parse_overrides
from benchmark.errors import MelbenchError
from benchmark.tasks import ReportSpec, TaskSpec, load_report_spec, load_tasks


def test_overrides_are_typed() -> None:
    assert parse_overrides(["a=3", "b=0.5", "c=true", "d=text", "e="]) == {"a": 3, "b": 0.5, "c": True, "d": "text", "e": ""}
    with pytest.raises(MelbenchError, match="expected key=value"):
        parse_overrides(["novalue"])
    spec = build_config(TaskSpec, {"dataset": "d", "level": "clip", "labels": "multiclass", "metrics": ["acc"], "seeds": 2})
    assert spec.metrics == ("acc",) and spec.fractions == (0.01, 0.05, 0.1, 1.0)
    with pytest.raises(MelbenchError, match="option 'seeds': expected int, got 2.5"):
        build_config(TaskSpec, {"dataset": "d", "level": "clip", "labels": "x", "metrics": [], "seeds": 2.5})


def test_tasks_file_rejects_unknown_keys_with_line(tmp_path: Path) -> None:
    assert list(load_tasks()) == ["phones", "instrument", "pitch", "tagging", "key", "genre"]
    bad = tmp_path / "tasks.yaml"
    bad.write_text("tasks:\n  t:\n    dataset: d\n    level: clip\n    labels: multiclass\n    metric: [acc]\n")
    with pytest.raises(MelbenchError, match=r"tasks.yaml:6: unknown key 'metric' in task 't'; known: dataset"):
        load_tasks(bad)
    bad.write_text("tasks:\n  t: {dataset: d, level: song, labels: multiclass, metrics: [a]}\n")
    with pytest.raises(MelbenchError, match="tasks.yaml:2: task 't': level must be one of frame, clip, got 'song'"):
        load_tasks(bad)


def test_scarce_fraction_is_a_typed_protocol_setting(tmp_path: Path) -> None:
    assert {spec.scarce_fraction for spec in load_tasks().values()} == {0.05}  # the default run's, from tasks.yaml
    bad = tmp_path / "tasks.yaml"
    bad.write_text("defaults:\n  scarce_fraction: 2\ntasks:\n  t: {dataset: d, level: clip, labels: multiclass, metrics: [accuracy]}\n")
    with pytest.raises(MelbenchError, match=r"task 't': scarce_fraction must be in \(0, 1\], got 2"):
        load_tasks(bad)


def test_report_settings_are_typed_and_checked(tmp_path: Path) -> None:
    assert load_report_spec() == ReportSpec(fdr_q=0.05, min_effect=0.03)  # the repo's tasks.yaml
    task = "tasks:\n  t: {dataset: d, level: clip, labels: multiclass, metrics: [accuracy]}\n"
    f = tmp_path / "tasks.yaml"
    f.write_text(task)
    assert load_report_spec(f) == ReportSpec()  # no section: the defaults
    f.write_text("report:\n  fdr_q: 0.1\n  min_effect: 0.05\n" + task)
    assert load_report_spec(f) == ReportSpec(fdr_q=0.1, min_effect=0.05) and list(load_tasks(f)) == ["t"]
    for body, message in [("  fdr: 0.1\n", r"tasks.yaml:2: unknown key 'fdr' in report; known: fdr_q, min_effect"),
                          ("  fdr_q: high\n", r"report: 'fdr_q': expected float, got 'high'"),
                          ("  fdr_q: 1.5\n", r"tasks.yaml:1: report: fdr_q must be in \(0, 1\), got 1.5")]:
        f.write_text("report:\n" + body + task)
        with pytest.raises(MelbenchError, match=message):
            load_report_spec(f)
    f.write_text("reports: {}\n" + task)
    with pytest.raises(MelbenchError, match="tasks.yaml:1: unknown top-level key 'reports'; known: defaults, tasks, report"):
        load_tasks(f)
