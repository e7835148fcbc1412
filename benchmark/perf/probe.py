"""The probe sections of `melbench bench`: every probe of one task from cached features, against
what the same probes would cost if features were re-extracted on every epoch (s3prl's way: its
downstream training runs the upstream on every batch); and the layer choice of one linear probe
with its layers' paths walked side by side, against one after another."""

import time
from typing import Any

import numpy as np
import torch

from benchmark.audio import load_audio
from benchmark.data.demo import build_demo_dataset
from benchmark.data.manifest import load_dataset_dir
from benchmark.fingerprints import dataset_fingerprint
from benchmark.home import melbench_home
from benchmark.metrics import accuracy
from benchmark.perf.common import BenchConfig, bench_options, reference, timed, timed_together
from benchmark.registry import load_upstream
from benchmark.run import RunConfig, TaskRunner
from benchmark.runs import RunLog, read_runs
from benchmark.tasks import TaskSpec, load_tasks
from benchmark.upstream import batch_extract, pad_batch
from benchmark.variants import FULL, Variant
from downstreams.probes import ProbeConfig
from downstreams.selection import ProbeGrid, Selection, select_probe

EXTRACT_BATCH = 16
# one of the default run's largest clip probes that run on one thread: every training crop of
# `genre` (869) and its validation crops, a small transformer's 4 hidden states pooled to 384
# (mean and standard deviation of 192), 8 collections, over the task's L2 grid in tasks.yaml
PATHS_SHAPE = {"train_rows": 869, "valid_rows": 196, "layers": 4, "dim": 384, "classes": 8}
PATHS_TASK = "genre"


def bench_probe_cache(cfg: BenchConfig) -> dict[str, Any]:
    """Time all probes of the demo task from the cache, and one extraction epoch, and compare.

    The cached time is measured whole: reading the cache, training every probe (fractions x
    seeds, plus the layer sweep), testing and recording them. The re-extraction time is that
    probe training time plus, for each probe, its epochs x its training items x the measured
    extraction time per training item (validation and test extraction are left out, so the
    estimate favours re-extraction). Call it with a scratch `$MELBENCH_HOME`.

    Args:
        cfg: the bench config (device, preset, repeats).

    Returns:
        Times, counts and `ratio` = re-extraction estimate / cached time.
    """
    device = torch.device(cfg.device)
    dataset = load_dataset_dir(build_demo_dataset())
    spec = TaskSpec(dataset="demo", level="clip", labels="multiclass", metrics=("accuracy",))
    compared = reference().upstream
    options = bench_options(compared, cfg)
    variant = Variant(None, options, None, FULL)
    out_dir = melbench_home() / "probe-runs"
    run_cfg = RunConfig(upstreams=(compared,), tasks={"demo": spec}, out_dir=out_dir, progress=False)
    upstream = load_upstream(compared, options)
    pair = (compared, variant, "demo", spec, dataset, dataset_fingerprint(dataset), upstream.num_layers)
    with RunLog(out_dir / "warm-up") as log:  # extracts and caches the features, off the clock
        TaskRunner(run_cfg, log, *pair).load()
    start = time.perf_counter()
    with RunLog(out_dir) as log:
        runner = TaskRunner(run_cfg, log, *pair)
        for fraction, seed, layer in runner.jobs():
            runner.run(fraction, seed, layer)
    cached_s = time.perf_counter() - start
    records = read_runs(out_dir / "runs.jsonl")

    train = dataset.split("train")
    waves = [torch.from_numpy(np.ascontiguousarray(load_audio(i.path, upstream.sample_rate))) for i in train]

    def epoch() -> None:
        with torch.inference_mode():
            for start_i in range(0, len(waves), EXTRACT_BATCH):
                padded, lengths = pad_batch(waves[start_i : start_i + EXTRACT_BATCH])
                batch_extract(upstream, padded.to(device), lengths, layers=True)

    epoch_t = timed(epoch, cfg.repeats, device)
    per_item_s = epoch_t["median_s"] / len(train)
    train_s = sum(r["train_s"] for r in records)
    item_epochs = sum(r["probe_epochs"] * r["n_train_items"] for r in records)
    reextract_s = train_s + item_epochs * per_item_s
    return {
        "task": "demo", "upstream": compared, "probe_runs": len(records), "train_items": len(train),
        "probe_epochs_total": sum(r["probe_epochs"] for r in records), "cached_s": cached_s,
        "probe_train_s": train_s, "extract_epoch": epoch_t, "reextract_estimate_s": reextract_s,
        "ratio": reextract_s / cached_s,
    }


def bench_probe_paths(cfg: BenchConfig) -> dict[str, Any]:
    """Time one linear probe's choice of layer and L2 strength with the layers' paths walked
    side by side (`select_probe`'s default) and one after another, in interleaved rounds.

    The features are random, at `PATHS_SHAPE`, with the class marked in one dimension of each
    layer, more strongly in higher layers, so each path has a real optimum.

    Args:
        cfg: the bench config (repeats).

    Returns:
        Both timings, `ratio` = one after another / side by side, the thread count, and
        `same_selection`: both ways gave the same curve, choice and weights.
    """
    shape = PATHS_SHAPE
    rng = np.random.default_rng(0)

    def split(rows: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, shape["classes"], rows)
        x = rng.normal(0, 1, (rows, shape["layers"], shape["dim"])).astype(np.float32)  # (N, L, D)
        for layer in range(shape["layers"]):
            x[np.arange(rows), layer, y] += 0.3 * (layer + 1)  # class c in dimension c, stronger higher up
        return x, y

    (xt, yt), (xv, yv) = split(shape["train_rows"]), split(shape["valid_rows"])
    grid = ProbeGrid(l2=load_tasks()[PATHS_TASK].l2_grid)

    def choose(side_by_side: bool) -> Selection:
        return select_probe(xt, yt, xv, yv, shape["classes"], False, ProbeConfig(), grid,
                            lambda y, p: accuracy(y, p, ()), seed=0, side_by_side=side_by_side)

    side, after = choose(True), choose(False)
    same = side.curve == after.curve and side.config == after.config and all(
        torch.equal(a, b) for a, b in zip(side.probe.model.state_dict().values(), after.probe.model.state_dict().values()))
    times = timed_together({"side_by_side": lambda: choose(True), "one_after_another": lambda: choose(False)},
                           cfg.repeats, torch.device("cpu"))
    return {**shape, "l2": list(grid.l2), "threads": torch.get_num_threads(), **times, "same_selection": same,
            "ratio": times["one_after_another"]["median_s"] / times["side_by_side"]["median_s"]}
