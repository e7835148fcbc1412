"""The plain-text table `melbench bench` prints from its record (`benchmark.perf.bench.run_bench`)."""

from collections.abc import Callable
from typing import Any


def format_table(record: dict[str, Any]) -> str:
    """The bench record as a plain-text table (medians, with [min, max])."""

    def span(r: dict[str, float], unit: str) -> str:
        return f"{r['median']:9.1f} {unit} [{r['min']:.1f}, {r['max']:.1f}]"

    def ratio(value: float | None) -> str:
        return "n/a (s3prl extra not installed)" if value is None else f"{value:.2f}x"

    env, pre, ext, probe = record["environment"], record["pretrain"], record["extract"], record["probe"]
    compared = record["reference"]["upstream"]
    lines = [f"melbench bench on {env['device']} ({env['device_name']}, {env['threads']} threads, torch {env['torch']}), "
             f"preset {record['config']['preset']}, {record['config']['repeats']} repeats",
             "", f"pretraining step, {pre['batch_size']} x {pre['clip_s']:g} s (audio s per s):"]
    for name in ("melbench", "melbench_compiled", "s3prl"):
        if name in pre:
            lines.append(f"  {name:<22}{span(pre[name]['audio_s_per_s'], 'audio s/s')}  ({pre['dtype'].get(name, pre['dtype']['melbench'])})")
    lines.append(f"  ratio vs s3prl        {ratio(record['pretrain_ratio_vs_s3prl'])}")
    if "mfu" in pre:
        m = pre["mfu"]
        lines.append(f"  MFU {m['mfu']:.1%}: {m['achieved_tflops']:.1f} TFLOP/s of a measured bf16 matmul peak of "
                     f"{m['bf16_matmul_peak_tflops']:.1f}")
    lines += ["", f"extraction, {ext['batch_size']} x {ext['clip_s']:g} s, every layer (x realtime):"]
    for name, r in ext["upstreams"].items():
        lines.append(f"  {name:<22}{span(r['x_realtime'], 'x')}")
    if "s3prl" in ext:
        lines.append(f"  {'s3prl (' + compared + ')':<22}{span(ext['s3prl']['x_realtime'], 'x')}")
    lines.append(f"  ratio vs s3prl        {ratio(record['extract_ratio_vs_s3prl'])}")
    lines += _bf16_lines(record, span, ratio)
    heap = record["without_mmap"]
    if "skipped" not in heap:
        lines += ["", f"the same comparisons, {heap['allocator']}:"]
        for name, row in heap["pretrain"].items():
            lines.append(f"  pretraining {name:<10}{span(row['audio_s_per_s'], 'audio s/s')}")
        lines.append(f"  ratio vs s3prl        {ratio(record['pretrain_ratio_vs_s3prl_without_mmap'])}")
        lines.append(f"  extraction {compared:<11}{span(heap['extract']['upstreams'][compared]['x_realtime'], 'x')}")
        if "s3prl" in heap["extract"]:
            lines.append(f"  extraction s3prl      {span(heap['extract']['s3prl']['x_realtime'], 'x')}")
        lines.append(f"  ratio vs s3prl        {ratio(record['extract_ratio_vs_s3prl_without_mmap'])}")
    lines += ["", f"probes of one task ({probe['probe_runs']} runs, {probe['upstream']} features):",
              f"  from the cache        {probe['cached_s']:9.1f} s",
              f"  re-extracting/epoch   {probe['reextract_estimate_s']:9.1f} s (estimate: {probe['probe_epochs_total']} "
              f"epochs x measured extraction {probe['extract_epoch']['median_s']:.2f} s per full epoch)",
              f"  ratio                 {probe['ratio']:.1f}x"]
    paths = record["probe_paths"]
    lines += ["", f"a linear probe's layer choice ({paths['train_rows']} x {paths['layers']} layers x {paths['dim']}, "
              f"{len(paths['l2'])} L2 strengths, {paths['threads']} threads; same selection: {paths['same_selection']}):",
              f"  paths side by side    {paths['side_by_side']['median_s']:9.2f} s",
              f"  one after another     {paths['one_after_another']['median_s']:9.2f} s",
              f"  ratio                 {paths['ratio']:.2f}x", "", "scaling (median s; batch 1 by length):"]
    for p in record["scaling"]["by_length"] + record["scaling"]["by_batch"]:
        lines.append(f"  batch {p['batch_size']:>3} x {p['clip_s']:5g} s: extract {p['extract']['median_s']:8.3f} s, "
                     f"pretraining step {p['pretrain_step']['median_s']:8.3f} s")
    return "\n".join(lines)


def _bf16_lines(record: dict[str, Any], span: Callable[..., str], ratio: Callable[[float | None], str]) -> list[str]:
    ext, compared = record["extract_bf16"], record["reference"]["upstream"]
    if "skipped" in ext:
        return ["", f"extraction under bf16 autocast: skipped ({ext['skipped']})"]
    error = ext["feature_error_vs_float32"]
    lines = ["", f"extraction under bf16 autocast, both sides (x realtime; {error['upstream']}'s features within "
             f"{error['worst_layer_relative_rms']:.2%} RMS of float32):"]
    for name, r in ext["upstreams"].items():
        lines.append(f"  {name:<22}{span(r['x_realtime'], 'x')}")
    if "s3prl" in ext:
        lines.append(f"  {'s3prl (' + compared + ')':<22}{span(ext['s3prl']['x_realtime'], 'x')}")
        ours = ext["upstreams"][compared]["x_realtime"]["median"]
        lines.append(f"  ratio vs s3prl        {ratio(record['extract_ratio_vs_s3prl_bf16'])} "
                     f"(vs s3prl at float32: {ours / record['extract']['s3prl']['x_realtime']['median']:.2f}x)")
    return lines
