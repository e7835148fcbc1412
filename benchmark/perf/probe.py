"""The probe section of `melbench bench`: every probe of one task from cached features, against
what the same probes would cost if features were re-extracted on every epoch (s3prl's way: its
downstream training runs the upstream on every batch)."""

import time
from typing import Any

import numpy as np
import torch

from benchmark.audio import load_audio
from benchmark.data.demo import build_demo_dataset
from benchmark.data.manifest import load_dataset_dir
from benchmark.fingerprints import dataset_fingerprint
from benchmark.home import melbench_home
from benchmark.perf.common import BenchConfig, bench_options, reference, timed
from benchmark.registry import load_upstream
from benchmark.run import RunConfig, TaskRunner
from benchmark.runs import RunLog, read_runs
from benchmark.tasks import TaskSpec
from benchmark.upstream import batch_extract, pad_batch
from benchmark.variants import FULL, Variant

EXTRACT_BATCH = 16


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
