"""What each `melbench` subcommand does: thin layers over library functions (the parser and
the entry point are in `benchmark.cli`)."""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from benchmark.config import parse_overrides
from benchmark.errors import MelbenchError


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.registry import available_upstreams, describe
    from benchmark.tasks import load_tasks

    upstreams, tasks = available_upstreams(), load_tasks(args.tasks_file)
    width = max(map(len, [*upstreams, *tasks])) + 2
    print("upstreams:")
    for name in upstreams:
        print(f"  {name:<{width}}{describe(name)}")
    print(f"tasks ({args.tasks_file}):")
    for name, spec in tasks.items():
        print(f"  {name:<{width}}{spec.level}/{spec.labels}, {spec.dataset}: {spec.description}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from benchmark.check import check_upstream
    from benchmark.contract import check_module
    from benchmark.registry import load_module, load_upstream

    results = check_module(load_module(args.upstream))
    upstream = load_upstream(args.upstream, parse_overrides(args.set))
    results += check_upstream(upstream)
    for r in results:
        print(f"  {'PASS' if r.passed else 'FAIL'}  {r.name:<20} {r.detail}")
    failed = [r.name for r in results if not r.passed]
    print(f"{args.upstream}: {len(results) - len(failed)} of {len(results)} checks passed")
    return 1 if failed else 0


def cmd_extract(args: argparse.Namespace) -> int:
    from benchmark.audio import find_audio_files
    from benchmark.extract import extract_files
    from benchmark.registry import load_module

    load_module(args.upstream)  # an unknown upstream is reported before the files are searched
    files = find_audio_files(args.audio)
    report = extract_files(args.upstream, parse_overrides(args.set), files, layers=args.layers, progress=not args.quiet)
    for item in report.items:
        note = "cached" if item.cached else "extracted"
        print(f"{item.path}: {item.shape} ({item.duration_s:.2f} s, {note}) -> {item.feature_path}")
        if args.out:
            out = Path(args.out) / f"{item.path.stem}.npy"
            out.parent.mkdir(parents=True, exist_ok=True)
            np.save(out, np.load(item.feature_path))
    for path, reason in report.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    hits = sum(i.cached for i in report.items)
    speed = f"{report.realtime_factor:.0f}x realtime" if report.extract_s > 0 else "no extraction needed"
    print(f"{len(report.items)} files ({hits} from cache), {len(report.skipped)} skipped; {speed}")
    return 1 if report.skipped and not report.items else 0


def comma_list(value: str) -> tuple[str, ...]:
    """The non-empty, stripped items of a comma-separated option value (`--tasks pitch, key`).

    Args:
        value: the option's text.

    Returns:
        Its items in order.
    """
    return tuple(v.strip() for v in value.split(",") if v.strip())


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.registry import BASELINE, default_upstreams
    from benchmark.run import RunConfig, run_all
    from benchmark.tasks import load_report_spec, load_tasks, select_tasks

    tasks = load_tasks(args.tasks_file)
    if args.tasks:
        tasks = select_tasks(tasks, comma_list(args.tasks))
    fractions = None
    if args.fractions:
        try:
            fractions = tuple(float(f) for f in comma_list(args.fractions))
        except ValueError:
            raise MelbenchError(f"--fractions {args.fractions!r}: expected numbers like 0.01,0.1,1") from None
        if not all(0 < f <= 1 for f in fractions):
            raise MelbenchError(f"--fractions {args.fractions!r}: each must be in (0, 1]")
    if args.seeds is not None and args.seeds < 1:
        raise MelbenchError(f"--seeds {args.seeds}: must be >= 1")
    upstreams = comma_list(args.upstreams) if args.upstreams else tuple(default_upstreams())
    # The baseline runs first: every comparison in the report needs it, even in a partial run.
    upstreams = tuple(sorted(upstreams, key=lambda u: u != BASELINE))
    overrides = {}
    if args.set:
        targets = [u for u in upstreams if u != BASELINE]
        if len(targets) != 1:
            raise MelbenchError(f"--set applies to one upstream besides {BASELINE}; got {', '.join(targets) or 'none'} "
                                "(run the others separately)")
        overrides = {targets[0]: parse_overrides(args.set)}
    cfg = RunConfig(
        upstreams=upstreams, tasks=tasks, out_dir=Path(args.out), quick=args.quick, fractions=fractions,
        seeds=args.seeds, layer_sweep=not args.no_layer_sweep, progress=not args.quiet, overrides=overrides,
        pretrain_steps=args.pretrain_steps, report=load_report_spec(args.tasks_file),
    )
    counts = run_all(cfg)
    print(f"results in {args.out}/: REPORT.md, summary.png, leaderboard.md, leaderboard.csv, low_data_*.png")
    return 1 if counts["failed_pairs"] else 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from benchmark.pretraining.ablate import load_ablation, run_ablation

    cfg = load_ablation(Path(args.file))
    out = Path(args.out) if args.out else Path("results") / "ablations" / Path(args.file).stem
    run_ablation(cfg, out, progress=not args.quiet)
    print(f"written {out / 'ablation.md'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report.write import write_report
    from benchmark.tasks import load_report_spec

    for path in write_report(Path(args.out), load_report_spec(args.tasks_file)):
        print(path)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark.perf.bench import BenchConfig, run_bench
    from benchmark.perf.table import format_table

    cfg = BenchConfig(device=args.device, preset=args.preset, batch_size=args.batch_size, clip_s=args.clip_s,
                      repeats=args.repeats, compile=args.compile, out_dir=Path(args.out))
    record = run_bench(cfg, quick=args.quick)
    print(format_table(record))
    print(f"written {Path(args.out) / 'bench.json'}")
    return 0


def cmd_to_s3prl(args: argparse.Namespace) -> int:
    import json

    import torch

    from benchmark.atomic import atomic_write
    from benchmark.registry import load_module

    from benchmark.pretraining.checkpoints import DEFAULT_CHECKPOINT
    from benchmark.registry import available_upstreams

    if not Path(args.checkpoint).exists() and args.checkpoint in available_upstreams():
        args.checkpoint = str(DEFAULT_CHECKPOINT.folder(args.checkpoint))  # NAME: the checkpoint `melbench run` made
        if not Path(args.checkpoint).is_dir():
            raise MelbenchError(f"{args.checkpoint}: no checkpoint yet; `melbench run` pretrains it "
                                f"({DEFAULT_CHECKPOINT.steps} steps), or give a checkpoint folder")
    record = Path(args.checkpoint) / "config.json"
    try:
        name = json.loads(record.read_text())["upstream"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MelbenchError(f"{record}: not a melbench checkpoint record ({err!r})") from None
    export = getattr(load_module(name), "to_s3prl", None)
    if export is None:
        raise MelbenchError(f"{name}: has no s3prl checkpoint format")
    states = export(args.checkpoint)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        torch.save(states, f)
    print(f"{name} checkpoint {args.checkpoint} -> {out} (s3prl format, keys: {', '.join(states)})")
    print(f"note: s3prl's hub entry {name}_local cannot load it: s3prl's entries compute their own features from "
          "waveforms, and none reproduces melbench's log-Mel (zero-padded frames, log(mel + 1e-6), no level "
          "normalisation); load it with s3prl's model class on melbench log-Mel frames (README: 'melbench "
          "checkpoints in s3prl')")
    return 0


def _snapshot_steps(value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        steps = tuple(sorted({int(v) for v in comma_list(value)}))
    except ValueError:
        raise MelbenchError(f"--snapshots {value!r}: expected step numbers like 0,100,200") from None
    if steps[0] < 0:
        raise MelbenchError(f"--snapshots {value!r}: steps must be >= 0")
    return steps


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.pretraining.loop import PretrainOptions, pretrain

    opts = PretrainOptions(
        upstream=args.upstream,
        corpus=args.corpus,
        quick=args.quick,
        preset=args.preset,
        steps=args.steps,
        minutes=args.minutes,
        out=Path(args.out) if args.out else None,
        resume=args.resume,
        overrides=parse_overrides(args.set),
        checkpoint_every=args.checkpoint_every,
        val_every=args.val_every,
        stop_after=args.stop_after,
        device=args.device,
        progress=not args.quiet,
        snapshot_steps=_snapshot_steps(args.snapshots),
    )
    r = pretrain(opts)
    curve = ", ".join(f"{s}:{v:.4f}" for s, v in r.val_loss)
    print(f"{args.upstream}: {r.parameters:,} parameters, step {r.step}, {r.audio_s_per_s:.1f} s of audio/s")
    print(f"  validation loss (step:loss) {curve}")
    print(f"  checkpoint {r.out}")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from benchmark.data.build import DATASETS, build
    from benchmark.data.info import split_table
    from benchmark.data.manifest import load_dataset_dir

    start = time.perf_counter()
    report = build(quick=args.quick, seed=args.seed, games=args.games)
    print(f"built {report.root} in {time.perf_counter() - start:.1f} s")
    for name in DATASETS:
        dataset = load_dataset_dir(report.root / name)
        print(f"{name} ({dataset.level}, {len(dataset.classes)} classes):")
        print("\n".join(split_table(dataset)))
    from benchmark.data.corpora import CORPORA, corpus_records

    for name in CORPORA:
        records = corpus_records(name, args.quick)
        hours = sum(r["duration_s"] for r in records) / 3600
        print(f"corpus {name}: {len(records)} files, {hours:.2f} h")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from benchmark.data.build import DATASETS
    from benchmark.data.info import describe
    from benchmark.data.load import load_dataset

    for name in [args.name] if args.name else DATASETS:
        print(describe(load_dataset(name, quick=args.quick), distribution=bool(args.name)))
    return 0
