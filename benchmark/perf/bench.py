"""`melbench bench`: how fast melbench is, measured side by side with s3prl in one run.

Every figure is the median of `repeats` timed runs after one untimed warm-up, with min and max;
what is compared side by side runs in interleaved rounds. Sections: pretraining throughput
(melbench's reconstruction transformer vs s3prl's `TransformerModel` +
`TransformerSpecPredictionHead` from the same config), extraction throughput (every discovered
upstream, and s3prl's model), the probe phase from cached features vs re-extraction per epoch,
a linear probe's layer choice with its layers' paths side by side vs one after another,
scaling with clip length and batch size, on a GPU the model FLOPs utilisation of a pretraining
step against the measured bf16 matmul rate, and last, on the CPU, the pretraining and
extraction comparisons again with glibc's malloc kept off mmap.
"""

import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError
from benchmark.perf.common import QUICK, BenchConfig, bench_options, rate, reference, timed, timed_together
from benchmark.perf.models import (
    FRAME_RATE, fake_mel, malloc_without_mmap, matmul_peak_flops, melbench_pretrain_step, step_flops,
)
from benchmark.perf.probe import bench_probe_cache, bench_probe_paths
from benchmark.registry import default_upstreams, load_module, load_upstream
from benchmark.upstream import batch_extract


def _compared_config(cfg: BenchConfig) -> tuple[Any, Any]:
    spec = load_module(reference().upstream).SPEC
    return spec, spec.config(cfg.preset)


def _pretrain_times(cfg: BenchConfig, with_s3prl: bool, compiled: bool) -> dict[str, dict[str, Any]]:
    """Timed pretraining steps of melbench (and compiled, and s3prl's classes), with throughput."""
    device = torch.device(cfg.device)
    spec, config = _compared_config(cfg)
    mel = fake_mel(cfg.batch_size, round(cfg.clip_s * FRAME_RATE), device)
    bf16 = device.type == "cuda"
    steps = {"melbench": melbench_pretrain_step(spec, config, mel, bf16)}
    if compiled:
        steps["melbench_compiled"] = melbench_pretrain_step(spec, config, mel, bf16, True)
    if with_s3prl:
        steps["s3prl"] = reference().pretrain_step(config, mel, False)
    rows = timed_together(steps, cfg.repeats, device)
    return {name: {**t, "audio_s_per_s": rate(t, cfg.batch_size * cfg.clip_s)} for name, t in rows.items()}


def bench_pretrain(cfg: BenchConfig, with_s3prl: bool) -> dict[str, Any]:
    """Pretraining throughput in seconds of audio per second, melbench vs s3prl."""
    device = torch.device(cfg.device)
    bf16 = device.type == "cuda"
    rows = _pretrain_times(cfg, with_s3prl, cfg.compile)
    out: dict[str, Any] = {"batch_size": cfg.batch_size, "clip_s": cfg.clip_s,
                           "dtype": {"melbench": "bf16 autocast" if bf16 else "float32", "s3prl": "float32"}, **rows}
    if device.type == "cuda":
        _, config = _compared_config(cfg)
        flops = step_flops(config, cfg.batch_size, round(cfg.clip_s * FRAME_RATE))
        peak = matmul_peak_flops(device)
        achieved = flops / rows["melbench"]["median_s"]
        out["mfu"] = {"step_tflop": flops / 1e12, "achieved_tflops": achieved / 1e12,
                      "bf16_matmul_peak_tflops": peak / 1e12, "mfu": achieved / peak}
    return out


def bench_without_mmap(cfg: BenchConfig, with_s3prl: bool) -> dict[str, Any]:
    """The pretraining and extraction comparisons again with glibc's malloc kept off mmap (CPU only).

    By default glibc serves every block over 32 MiB with a fresh mmap, so each new (B, heads,
    T, T) tensor is page-faulted in anew; code that allocates many of them (s3prl's attention)
    pays for that, and an allocator that keeps freed memory hides the cost. Both sides run
    under the same setting here, as the main comparisons run both under glibc's default.
    """
    if cfg.device != "cpu":
        return {"skipped": "measured on the CPU only"}
    with malloc_without_mmap() as active:
        if not active:
            return {"skipped": "not glibc: mallopt is unavailable"}
        return {"allocator": "glibc malloc, mmap off (M_MMAP_MAX=0), no trimming",
                "pretrain": _pretrain_times(cfg, with_s3prl, compiled=False),
                "extract": bench_extract(cfg, with_s3prl, (reference().upstream,))}


def _waves(batch: int, clip_s: float, sr_hz: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    n = round(clip_s * sr_hz)
    return torch.randn(batch, n, generator=generator) * 0.1, torch.full((batch,), n)


def bench_extract(cfg: BenchConfig, with_s3prl: bool, names: tuple[str, ...] | None = None,
                  precision: str = "float32") -> dict[str, Any]:
    """Extraction throughput (x realtime, every layer) of each upstream (`names`, default every
    discovered one) and of s3prl's model, at `precision` ("float32", or "bf16": melbench's
    `precision` load option, and s3prl's model under the same bf16 autocast)."""
    device = torch.device(cfg.device)
    audio_s = cfg.batch_size * cfg.clip_s
    runs: dict[tuple[str, str], Callable[[], None]] = {}  # (side, name): s3prl's model beside the upstreams
    unsupported = []
    for name in names or default_upstreams():
        options = bench_options(name, cfg) | ({} if precision == "float32" else {"precision": precision})
        try:
            upstream = load_upstream(name, options)
        except MelbenchError:
            if precision == "float32":
                raise
            unsupported.append(name)  # no `precision` option (the log-Mel baseline)
            continue
        waves, lengths = _waves(cfg.batch_size, cfg.clip_s, upstream.sample_rate)

        def run(upstream: Any = upstream, waves: torch.Tensor = waves, lengths: torch.Tensor = lengths) -> None:
            with torch.inference_mode():
                batch_extract(upstream, waves, lengths, layers=True)

        runs["melbench", name] = run
    if with_s3prl:
        from benchmark.logmel import LogMel, MelConfig

        _, config = _compared_config(cfg)
        frontend = LogMel(MelConfig()).to(device)
        model = reference().extract(config, device)
        waves, _ = _waves(cfg.batch_size, cfg.clip_s, frontend.config.sr_hz)

        def run_s3prl() -> None:
            with torch.inference_mode():
                mel = frontend(waves.to(device))  # float32, as melbench's front-end stays
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    model(mel)

        runs["s3prl", reference().upstream] = run_s3prl
    times = {key: {**t, "x_realtime": rate(t, audio_s)} for key, t in timed_together(runs, cfg.repeats, device).items()}
    out: dict[str, Any] = {"batch_size": cfg.batch_size, "clip_s": cfg.clip_s, "precision": precision,
                           "upstreams": {name: t for (side, name), t in times.items() if side == "melbench"}}
    if unsupported:
        out["without_precision_option"] = unsupported
    if with_s3prl:
        out["s3prl"] = times["s3prl", reference().upstream]
    return out


def bf16_unsupported(device: torch.device) -> str | None:
    """Why bf16 matmuls would not be fast on `device` (None where they are: a GPU that supports
    bf16, a CPU with AVX512-BF16 or AMX; elsewhere the CPU emulates them, slower than float32)."""
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bf16 support"
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private to torch.cpu: looked up defensively
    if any(getattr(torch.cpu, probe, lambda: False)() for probe in probes):
        return None
    return "this CPU has neither AVX512-BF16 nor AMX, so bf16 matmuls would be emulated"


def bench_extract_bf16(cfg: BenchConfig, with_s3prl: bool) -> dict[str, Any]:
    """The extraction comparison under bf16 autocast on both sides, and how far bf16 features
    of the compared upstream are from its float32 ones (relative RMS error, worst layer)."""
    reason = bf16_unsupported(torch.device(cfg.device))
    if reason:
        return {"skipped": reason}
    out = bench_extract(cfg, with_s3prl, precision="bf16")
    upstreams = {p: load_upstream(reference().upstream, bench_options(reference().upstream, cfg) | {"precision": p}) for p in ("float32", "bf16")}
    waves, lengths = _waves(cfg.batch_size, cfg.clip_s, upstreams["bf16"].sample_rate)
    with torch.inference_mode():
        feats = {p: batch_extract(up, waves, lengths, layers=True)[0] for p, up in upstreams.items()}  # (B, layers, T, D)
    error = (feats["bf16"] - feats["float32"]).pow(2).sum((0, 2, 3)).sqrt() / feats["float32"].pow(2).sum((0, 2, 3)).sqrt()
    out["feature_error_vs_float32"] = {"upstream": reference().upstream, "worst_layer_relative_rms": float(error.max())}
    return out


def bench_scaling(cfg: BenchConfig) -> dict[str, Any]:
    """How extraction and pretraining time grow with clip length (batch 1) and batch size."""
    device = torch.device(cfg.device)
    spec, config = _compared_config(cfg)
    upstream = load_upstream(reference().upstream, bench_options(reference().upstream, cfg))
    bf16 = device.type == "cuda"
    out: dict[str, Any] = {"by_length": [], "by_batch": []}

    def point(batch: int, clip_s: float) -> dict[str, Any]:
        waves, lengths = _waves(batch, clip_s, upstream.sample_rate)

        def extract() -> None:
            with torch.inference_mode():
                batch_extract(upstream, waves.to(device), lengths, layers=True)

        mel = fake_mel(batch, round(clip_s * FRAME_RATE), device)
        return {"batch_size": batch, "clip_s": clip_s, "extract": timed(extract, cfg.repeats, device),
                "pretrain_step": timed(melbench_pretrain_step(spec, config, mel, bf16), cfg.repeats, device)}

    out["by_length"] = [point(1, s) for s in cfg.lengths_s]
    out["by_batch"] = [point(b, cfg.clip_s) for b in cfg.batch_sizes]
    return out


@contextmanager
def scratch_home() -> Iterator[Path]:
    """A temporary `$MELBENCH_HOME`, so the probe section leaves the user's cache untouched."""
    old = os.environ.get("MELBENCH_HOME")
    with tempfile.TemporaryDirectory(prefix="melbench-bench-") as tmp:
        os.environ["MELBENCH_HOME"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("MELBENCH_HOME", None)
            else:
                os.environ["MELBENCH_HOME"] = old


def environment(cfg: BenchConfig) -> dict[str, Any]:
    """Machine facts the figures depend on."""
    from benchmark.runs import git_revision, now_utc

    device = torch.device(cfg.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"device": cfg.device, "device_name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "git_revision": git_revision(), "date": now_utc()}


def run_bench(cfg: BenchConfig, quick: bool = False) -> dict[str, Any]:
    """Run every section and write `cfg.out_dir / bench.json`.

    Args:
        cfg: what to measure.
        quick: tiny sizes (seconds; for tests), overriding the config's sizes.

    Returns:
        The bench record (also written to bench.json).
    """

    if quick:
        cfg = replace(cfg, **QUICK)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise MelbenchError("--device cuda: no CUDA device is visible to torch")
    with_s3prl = reference().available()
    pretrain = bench_pretrain(cfg, with_s3prl)
    extract = bench_extract(cfg, with_s3prl)
    extract_bf16 = bench_extract_bf16(cfg, with_s3prl)
    with scratch_home():
        probe = bench_probe_cache(cfg)
    paths = bench_probe_paths(cfg)
    record: dict[str, Any] = {
        "pretrain_ratio_vs_s3prl": _ratio(pretrain, "melbench", "s3prl", "audio_s_per_s"),
        "extract_ratio_vs_s3prl": _ratio_extract(extract),
        "extract_ratio_vs_s3prl_bf16": None if "skipped" in extract_bf16 else _ratio_extract(extract_bf16),
        "probe_cache_ratio": probe["ratio"],
        "probe_paths_ratio": paths["ratio"],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "s3prl_installed": with_s3prl,
        "reference": {"library": reference().library, "upstream": reference().upstream},
        "environment": environment(cfg),
        "pretrain": pretrain,
        "extract": extract,
        "extract_bf16": extract_bf16,
        "probe": probe,
        "probe_paths": paths,
        "scaling": bench_scaling(cfg),
    }
    # last: mallopt's settings are process-wide, and the other sections ran under the defaults
    record["without_mmap"] = heap = bench_without_mmap(cfg, with_s3prl)
    measured = "skipped" not in heap
    record["pretrain_ratio_vs_s3prl_without_mmap"] = (
        _ratio(heap["pretrain"], "melbench", "s3prl", "audio_s_per_s") if measured else None)
    record["extract_ratio_vs_s3prl_without_mmap"] = _ratio_extract(heap["extract"]) if measured else None
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(cfg.out_dir / "bench.json", "w") as f:
        json.dump(record, f, indent=2)
    return record


def _ratio(section: dict[str, Any], ours: str, theirs: str, key: str) -> float | None:
    if theirs not in section:
        return None
    return section[ours][key]["median"] / section[theirs][key]["median"]


def _ratio_extract(extract: dict[str, Any]) -> float | None:
    if "s3prl" not in extract:
        return None
    return extract["upstreams"][reference().upstream]["x_realtime"]["median"] / extract["s3prl"]["x_realtime"]["median"]
