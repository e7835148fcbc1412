"""What every section of `melbench bench` shares: its config, the reference it compares with, the
interleaved timer and the bench's load options (split from `benchmark.perf.bench` so that the probe
section, `benchmark.perf.probe`, imports it without a cycle)."""

import functools
import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from benchmark.errors import MelbenchError
from benchmark.perf.models import sync
from benchmark.registry import available_upstreams, load_module
from benchmark.upstream import Reference

K = TypeVar("K", bound=Hashable)
REFERENCE_LIBRARY = "s3prl"  # the bench times melbench beside this library's own classes


@functools.cache
def reference() -> Reference:
    """The `REFERENCE` (module contract) of `REFERENCE_LIBRARY` that a discovered upstream module
    declares; its `upstream` is the melbench upstream the bench compares.

    Raises:
        MelbenchError: no module declares one.
    """
    for name in available_upstreams():
        try:
            found = getattr(load_module(name), "REFERENCE", None)
        except MelbenchError:  # a module that does not import is `melbench check`'s business
            continue
        if isinstance(found, Reference) and found.library == REFERENCE_LIBRARY:
            return found
    raise MelbenchError(f"melbench bench: no upstream module declares a REFERENCE for {REFERENCE_LIBRARY}")


@dataclass(frozen=True)
class BenchConfig:
    """What `melbench bench` measures.

    Attributes:
        device: "cpu" or "cuda".
        preset: model size of every SSL upstream (s3prl's Mockingjay base = "base").
        batch_size: clips per pretraining step and per extraction batch.
        clip_s: clip (crop) length in seconds.
        repeats: timed runs per figure (after one warm-up).
        lengths_s: clip lengths of the scaling section.
        batch_sizes: batch sizes of the scaling section.
        compile: also time melbench's pretraining step under `torch.compile`.
        out_dir: where bench.json goes.
    """

    device: str = "cpu"
    preset: str = "base"
    batch_size: int = 8
    clip_s: float = 10.0
    repeats: int = 3
    lengths_s: tuple[float, ...] = (1.0, 10.0, 60.0)
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    compile: bool = False
    out_dir: Path = Path("results")


QUICK = {"preset": "tiny", "batch_size": 2, "clip_s": 1.0, "repeats": 2, "lengths_s": (1.0, 2.0), "batch_sizes": (1, 2)}


def timed_together(fns: dict[K, Callable[[], Any]], repeats: int, device: torch.device) -> dict[K, dict[str, float]]:
    """Wall seconds of each function: one warm-up each, then `repeats` rounds that run every
    function once in turn, so that a machine's drift (other tenants, clocks, the allocator's
    state) falls on all sides alike; median / min / max over the rounds."""
    for fn in fns.values():
        fn()
        sync(device)
    times: dict[K, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t), "repeats": repeats}
            for name, t in times.items()}


def timed(fn: Callable[[], Any], repeats: int, device: torch.device) -> dict[str, float]:
    """Wall seconds of `fn`: one warm-up, then median / min / max over `repeats` runs."""
    return timed_together({"fn": fn}, repeats, device)["fn"]


def rate(t: dict[str, float], work: float) -> dict[str, float]:
    """`work` per second at the median, and at the slowest and fastest run."""
    return {"median": work / t["median_s"], "min": work / t["max_s"], "max": work / t["min_s"]}


def bench_options(name: str, cfg: BenchConfig) -> dict[str, Any]:
    """Load options of an upstream for the bench: its `CHECK_OPTIONS` (an untrained model: speed
    does not depend on the weights), at the bench preset and device where it takes a preset."""
    options = dict(getattr(load_module(name), "CHECK_OPTIONS", {}))
    if "preset" in options:
        options.update(preset=cfg.preset, device=cfg.device)
    return options
