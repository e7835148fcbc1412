"""`tasks.yaml` and typed overrides: types checked, unknown keys rejected with their line."""

import pytest
from pathlib import Path

from benchmark.config import build_config, parse_overrides
from benchmark.errors import MelbenchError
from benchmark.tasks import TaskSpec, load_tasks


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
