"""Probe hyper-parameters chosen on the validation split only, from one grid shared by every
upstream, read from the tasks file and recorded with each run."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from _scripts import load_script
from benchmark.cli import main
from benchmark.errors import MelbenchError
from benchmark.metrics import accuracy
from benchmark.registry import load_upstream
from benchmark.runs import read_runs
from benchmark.tasks import load_tasks
from downstreams.probes import ProbeConfig
from downstreams import selection
from downstreams.selection import ProbeGrid, select_probe

GRID = ProbeGrid(l2=(1e-4, 1e-2, 1.0, 100.0))


def noisy_problem(n_train: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """4 classes, 2 informative of 64 dims, two layers; validation and test of 400 rows each."""
    rng = np.random.default_rng(seed)
    n = n_train + 800
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 1, (n, 2, 64)).astype(np.float32)
    x[:, 1, :2] += 1.5 * np.stack([y % 2, y // 2], 1)
    return x[:n_train], y[:n_train], x[n_train:-400], y[n_train:-400], x[-400:], y[-400:]


def score(y: np.ndarray, scores: np.ndarray) -> float:
    return accuracy(y, scores, ())


def test_the_choice_is_the_best_validation_score_and_small_subsets_need_more_penalty() -> None:
    chosen = {}
    for n_train in (24, 2000):
        xt, yt, xv, yv, _, _ = noisy_problem(n_train)
        # one path (the weighted sum over both layers): the L2 strength alone is chosen
        sel = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), replace(GRID, layer_choice="weighted"), score,
                           seed=0)
        l2s = [p["l2"] for p in sel.curve]
        assert l2s == sorted(GRID.l2, reverse=True)[: len(l2s)]  # the path runs strongest first
        best = max(sel.curve, key=lambda p: (p["valid_score"], -p["valid_loss"]))
        assert sel.config.l2 == best["l2"]
        # the returned probe is the chosen point's: its validation accuracy is the recorded one
        assert score(yv, sel.probe.predict(xv)) == pytest.approx(best["valid_score"], abs=1e-6)
        assert sel.at_edge == (sel.config.l2 in (min(GRID.l2), max(GRID.l2)))
        chosen[n_train] = sel.config.l2
    assert chosen[24] > chosen[2000]  # 24 rows in 128 dims overfit without a strong penalty


def test_mlp_grid_spans_learning_rates_and_strengths() -> None:
    xt, yt, xv, yv, _, _ = noisy_problem(300)
    grid = ProbeGrid(l2=(1e-3, 1.0), lr=(1e-3, 1e-2))
    sel = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(kind="mlp", max_epochs=30), grid, score, seed=0)
    for layer in (0, 1):  # every (learning rate, L2) pair for each layer
        assert sorted((p["lr"], p["l2"]) for p in sel.curve if p["layer"] == layer) == \
            [(1e-3, 1e-3), (1e-3, 1.0), (1e-2, 1e-3), (1e-2, 1.0)]
    assert (sel.config.lr, sel.config.l2, sel.config.layer) in {(p["lr"], p["l2"], p["layer"]) for p in sel.curve}


def test_selection_is_deterministic() -> None:
    xt, yt, xv, yv, xs, _ = noisy_problem(100)
    a = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), GRID, score, seed=0)
    b = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), GRID, score, seed=0)
    assert a.curve == b.curve and np.array_equal(a.probe.predict(xs), b.probe.predict(xs))


def test_layer_paths_side_by_side_give_the_selection_of_one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """A linear probe on one thread walks its layers' paths in threads; the curve, the choice
    and the fitted weights are those of the paths walked one after another."""
    xt, yt, xv, yv, xs, _ = noisy_problem(2400)
    # four layers (2400 x 4 x 64 floats, past the threshold), each its own: two threads take two each
    noise = np.random.default_rng(1)
    xt, xv, xs = (np.concatenate([x, x + noise.normal(0, 1, x.shape).astype(np.float32)], 1) for x in (xt, xv, xs))
    pools = []

    class CountedPool(selection.ThreadPoolExecutor):
        def __init__(self, workers: int):
            pools.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(selection, "ThreadPoolExecutor", CountedPool)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as on two cores, whatever this machine has
    try:
        side = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), GRID, score, seed=0)
        assert pools == [2] and torch.get_num_threads() == 2  # side by side, and the count restored
        after = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), GRID, score, seed=0, side_by_side=False)
        assert pools == [2]  # one after another
    finally:
        torch.set_num_threads(threads)
    assert side.curve == after.curve and {p["layer"] for p in side.curve} == {0, 1, 2, 3}
    assert side.config == after.config and side.score == after.score
    assert np.array_equal(side.probe.predict(xs), after.probe.predict(xs))


def test_only_small_linear_probes_with_several_layers_walk_side_by_side() -> None:
    big = np.zeros((1000, 3, 100), np.float32)  # 300,000 floats: the threshold
    assert selection._side_by_side(2, ProbeConfig(), 3, big) == 2
    assert selection._side_by_side(4, ProbeConfig(), 3, big) == 3  # never more threads than paths
    assert selection._side_by_side(None, ProbeConfig(), 3, big) == 1  # large: torch's threads inside
    assert selection._side_by_side(2, ProbeConfig(kind="mlp"), 3, big) == 1  # dropout's generator
    assert selection._side_by_side(2, ProbeConfig(), 1, big) == 1
    assert selection._side_by_side(2, ProbeConfig(), 3, big[:999]) == 1  # Python-bound: no gain


def test_the_layer_is_chosen_on_validation_with_the_l2_strength() -> None:
    """Each layer is probed alone and the best (layer, L2) on validation wins; the probe then
    reads that layer from the whole input, exactly as a probe told to read it."""
    xt, yt, xv, yv, xs, _ = noisy_problem(300)
    sel = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), GRID, score, seed=0)
    assert sel.config.layer == 1  # the layer that holds the signal
    assert {p["layer"] for p in sel.curve} == {0, 1}
    best = max(sel.curve, key=lambda p: (p["valid_score"], -p["valid_loss"]))
    assert (best["layer"], best["l2"]) == (sel.config.layer, sel.config.l2)
    assert score(yv, sel.probe.predict(xv)) == pytest.approx(sel.score, abs=1e-6)
    alone = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(layer=1), GRID, score, seed=0)
    assert np.array_equal(alone.probe.predict(xs), sel.probe.predict(xs))
    weighted = select_probe(xt, yt, xv, yv, 4, False, ProbeConfig(), replace(GRID, layer_choice="weighted"), score,
                            seed=0)
    assert weighted.config.layer is None and weighted.probe.model.layer_weights() is not None
    assert "layer" not in weighted.curve[0]


def test_a_one_layer_upstream_gets_the_same_probe_either_way() -> None:
    """Mel has one layer: choosing it and weighting it are the same fit, bit for bit."""
    xt, yt, xv, yv, xs, _ = noisy_problem(100)
    one = [x[:, 1:] for x in (xt, xv, xs)]
    chosen = select_probe(one[0], yt, one[1], yv, 4, False, ProbeConfig(), GRID, score, seed=0)
    weighted = select_probe(one[0], yt, one[1], yv, 4, False, ProbeConfig(), replace(GRID, layer_choice="weighted"),
                            score, seed=0)
    assert chosen.curve == weighted.curve and np.array_equal(chosen.probe.predict(one[2]), weighted.probe.predict(one[2]))
    # and the same probe as one told to read that layer (the path differs in rounding only: its
    # L-BFGS steps over one parameter fewer)
    told = select_probe(one[0], yt, one[1], yv, 4, False, ProbeConfig(layer=0), GRID, score, seed=0)
    assert told.config.l2 == chosen.config.l2 and told.score == pytest.approx(chosen.score, abs=0.005)
    assert (told.probe.predict(one[2]).argmax(1) == chosen.probe.predict(one[2]).argmax(1)).mean() >= 0.98


def test_a_weighted_grid_is_recorded_as_before_the_layer_choice() -> None:
    """Records made with the weighted sum have no `layer_choice`: `layer_choice: weighted` finds them current."""
    assert ProbeGrid(l2=(1.0,), lr=(), layer_choice="weighted").record() == {"l2": (1.0,), "lr": ()}
    assert ProbeGrid(l2=(1.0,), lr=()).record() == {"l2": (1.0,), "lr": (), "layer_choice": "validation"}


def _swap_test_labels(melbench_home: Path) -> None:
    """Give every test item of the demo dataset the next class's label (train and validation untouched)."""
    manifest = melbench_home / "data" / "demo" / "manifest.jsonl"
    items = [json.loads(line) for line in manifest.read_text().splitlines()]
    classes = sorted({r["labels"][0] for r in items})
    for r in items:
        if r["split"] == "test":
            r["labels"] = [classes[(classes.index(r["labels"][0]) + 1) % len(classes)]]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in items))


def _tasks_file(tmp_path: Path, grid: str) -> Path:
    path = tmp_path / "tasks.yaml"
    path.write_text(f"""defaults:
  l2_grid: [1e-5, 1e-3, 0.1, 10]
tasks:
  demo:
    dataset: demo
    level: clip
    labels: multiclass
    metrics: [accuracy]
    fractions: [0.25]
    seeds: 2
{grid}""")
    return path


def test_grid_comes_from_the_tasks_file_with_per_task_overrides(tmp_path: Path) -> None:
    assert load_tasks(_tasks_file(tmp_path, "")) ["demo"].l2_grid == (1e-5, 1e-3, 0.1, 10.0)
    assert load_tasks(_tasks_file(tmp_path, "    l2_grid: [0.5, 5]\n"))["demo"].l2_grid == (0.5, 5.0)
    with pytest.raises(MelbenchError, match=r"tasks.yaml:\d+: task 'demo': l2_grid must be distinct positive"):
        load_tasks(_tasks_file(tmp_path, "    l2_grid: [0.5, -1]\n"))
    with pytest.raises(MelbenchError, match=r"tasks.yaml:11: task 'demo': 'l2_grid'"):
        load_tasks(_tasks_file(tmp_path, "    l2_grid: [a, b]\n"))
    assert load_tasks(_tasks_file(tmp_path, ""))["demo"].layer_choice == "validation"
    with pytest.raises(MelbenchError, match=r"tasks.yaml:\d+: task 'demo': layer_choice must be one of validation, "
                                            r"weighted, got 'best'"):
        load_tasks(_tasks_file(tmp_path, "    layer_choice: best\n"))


def test_every_upstream_gets_the_same_grid_and_the_test_split_plays_no_part(tmp_path: Path, melbench_home: Path) -> None:
    tasks = _tasks_file(tmp_path, "")
    run = ["run", "--upstreams", "mel,upstreams._template", "--tasks-file", str(tasks), "--quiet", "--no-layer-sweep"]
    assert main([*run, "--out", str(tmp_path / "a")]) == 0
    records = read_runs(tmp_path / "a" / "runs.jsonl")
    assert {r["upstream"] for r in records} == {"mel", "upstreams._template"}
    assert all(r["probe_grid"]["l2"] == [1e-5, 1e-3, 0.1, 10.0] for r in records)
    assert all(r["probe_choice"]["l2"] in r["probe_grid"]["l2"] for r in records)
    assert all(r["probe_grid"]["layer_choice"] == "validation" for r in records)
    learned = [r for r in records if r["upstream"] != "mel"]
    assert all(r["probe_choice"]["layer"] in {p["layer"] for p in r["probe_valid_curve"]} for r in learned)
    # Swap the test split's labels: the same validation curves and choices, other test scores.
    _swap_test_labels(melbench_home)
    assert main([*run, "--out", str(tmp_path / "b")]) == 0
    poisoned = read_runs(tmp_path / "b" / "runs.jsonl")
    key = lambda r: (r["upstream"], r["seed"])  # noqa: E731
    for a, b in zip(sorted(records, key=key), sorted(poisoned, key=key)):
        assert a["probe_valid_curve"] == b["probe_valid_curve"] and a["probe_choice"] == b["probe_choice"]
    assert [r["metrics"]["accuracy"]["value"] for r in sorted(records, key=key)] != \
        [r["metrics"]["accuracy"]["value"] for r in sorted(poisoned, key=key)]


def test_probe_layers_script_scores_every_reading_on_validation_only(tmp_path: Path, melbench_home: Path) -> None:
    """`scripts/probe_layers.py`, the measurement behind `layer_choice`: every reading of a
    two-layer upstream is probed on the same subsets, the table has one row per (task, fraction,
    learned upstream), and the test split's labels play no part."""
    script = load_script("probe_layers")
    upstreams, out = ("mel", "upstreams._template"), tmp_path / "layers"
    current = script.probe_all(upstreams, load_tasks(_tasks_file(tmp_path, "")), [0.25], 2, None, out)
    lines = [json.loads(line) for line in (out / "layers.jsonl").read_text().splitlines()]
    readings = {tuple(r["key"][:4]): set() for r in lines}
    for r in lines:
        readings[tuple(r["key"][:4])].add(r["key"][4])
    layers = {u: int(getattr(load_upstream(u), "num_layers", 1)) for u in upstreams}
    assert layers == {"mel": 1, "upstreams._template": 2}  # the reference has one reading, the other several
    for upstream in upstreams:
        assert all(readings[(upstream, "demo", 0.25, seed)] == set(script.readings(layers[upstream])) for seed in (0, 1))
    rows = script.table(upstreams, out, current)
    assert len(rows) == 3 and rows[2].startswith("| demo | 25% | upstreams._template | 2 |")
    # Other probe settings are other inputs: nothing is reused, and the table reads only the new lines.
    changed = script.probe_all(upstreams, load_tasks(_tasks_file(tmp_path, "    l2_grid: [1e-3, 0.1]\n")), [0.25], 2,
                               None, out)
    assert not changed & current and len(out.joinpath("layers.jsonl").read_text().splitlines()) == 2 * len(lines)
    assert script.table(upstreams, out, changed)[2] != rows[2]
    # Swap the test split's labels: every validation score stays the same.
    _swap_test_labels(melbench_home)
    script.probe_all(upstreams, load_tasks(_tasks_file(tmp_path, "")), [0.25], 2, None, tmp_path / "poisoned")
    poisoned = [json.loads(line) for line in (tmp_path / "poisoned" / "layers.jsonl").read_text().splitlines()]
    assert [(r["key"], r["valid_score"]) for r in poisoned] == [(r["key"], r["valid_score"]) for r in lines]


def test_probe_iterations_script_scales_the_cap_and_scores_validation_only(tmp_path: Path,
                                                                         melbench_home: Path) -> None:
    """`scripts/probe_iterations.py`, the measurement behind the L-BFGS caps of tasks.yaml: each
    scale probes with that multiple of the task's cap, records no test score, and the table has
    one row per (upstream, scale)."""
    script = load_script("probe_iterations")
    upstreams, tasks = ("mel", "upstreams._template"), load_tasks(_tasks_file(tmp_path, "    lbfgs_iters: 3\n"))
    for scale in (1, 4):
        script.probe_all(upstreams, tasks, (0.25,), 2, scale, tmp_path / f"x{scale}")
    for scale in (1, 4):
        records = read_runs(tmp_path / f"x{scale}" / "runs.jsonl")
        assert len(records) == 4 and all(r["validation_only"] and r["metrics"] == {} for r in records)
        assert {r["probe"]["lbfgs_iters"] for r in records} == {3 * scale}
        assert max(p["epochs"] for r in records for p in r["probe_valid_curve"]) <= 3 * scale
    rows = script.table(upstreams, tasks, [1, 4], tmp_path)
    assert [row.split(" | ")[2:5] for row in rows[2:]] == [
        [u, f"x{s}", str(3 * s)] for u in upstreams for s in (1, 4)]
    assert all(row.split(" | ")[6] == "+0.000" for row in rows[2:4])  # the reference minus itself
