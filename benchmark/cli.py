"""The `melbench` command line. Each subcommand is a thin layer over a library function."""

import argparse
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from benchmark.checkpoints import DEFAULT_CHECKPOINT
from benchmark.config import parse_overrides
from benchmark.errors import MelbenchError

DEFAULT_TASKS = Path(__file__).resolve().parent.parent / "tasks.yaml"


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
    from benchmark.registry import load_upstream

    upstream = load_upstream(args.upstream, parse_overrides(args.set))
    results = check_upstream(upstream)
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


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.registry import default_upstreams
    from benchmark.report_stats import BASELINE
    from benchmark.run import RunConfig, run_all
    from benchmark.tasks import load_tasks

    tasks = load_tasks(args.tasks_file)
    if args.tasks:
        unknown = [t for t in _csv(args.tasks) if t not in tasks]
        if unknown:
            raise MelbenchError(f"unknown task {unknown[0]!r}; known: {', '.join(tasks)}")
        tasks = {t: tasks[t] for t in _csv(args.tasks)}
    fractions = None
    if args.fractions:
        try:
            fractions = tuple(float(f) for f in _csv(args.fractions))
        except ValueError:
            raise MelbenchError(f"--fractions {args.fractions!r}: expected numbers like 0.01,0.1,1") from None
        if not all(0 < f <= 1 for f in fractions):
            raise MelbenchError(f"--fractions {args.fractions!r}: each must be in (0, 1]")
    if args.seeds is not None and args.seeds < 1:
        raise MelbenchError(f"--seeds {args.seeds}: must be >= 1")
    upstreams = _csv(args.upstreams) if args.upstreams else tuple(default_upstreams())
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
        pretrain_steps=args.pretrain_steps,
    )
    counts = run_all(cfg)
    print(f"results in {args.out}/: REPORT.md, summary.png, leaderboard.md, leaderboard.csv, low_data_*.png")
    return 1 if counts["failed_pairs"] else 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from benchmark.ablate import load_ablation, run_ablation

    cfg = load_ablation(Path(args.file))
    out = Path(args.out) if args.out else Path("results") / "ablations" / Path(args.file).stem
    run_ablation(cfg, out, progress=not args.quiet)
    print(f"written {out / 'ablation.md'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.report import write_report

    for path in write_report(Path(args.out)):
        print(path)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark.bench import BenchConfig, run_bench
    from benchmark.bench_table import format_table

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

    from benchmark.checkpoints import DEFAULT_CHECKPOINT
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
        steps = tuple(sorted({int(v) for v in _csv(value)}))
    except ValueError:
        raise MelbenchError(f"--snapshots {value!r}: expected step numbers like 0,100,200") from None
    if steps[0] < 0:
        raise MelbenchError(f"--snapshots {value!r}: steps must be >= 0")
    return steps


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.pretrain import PretrainOptions, pretrain

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
    from benchmark.dataset import load_dataset_dir

    start = time.perf_counter()
    report = build(quick=args.quick, seed=args.seed, games=args.games)
    print(f"built {report.root} in {time.perf_counter() - start:.1f} s")
    for name in DATASETS:
        dataset = load_dataset_dir(report.root / name)
        print(f"{name} ({dataset.level}, {len(dataset.classes)} classes):")
        print("\n".join(split_table(dataset)))
    from benchmark.corpora import CORPORA, corpus_records

    for name in CORPORA:
        records = corpus_records(name, args.quick)
        hours = sum(r["duration_s"] for r in records) / 3600
        print(f"corpus {name}: {len(records)} files, {hours:.2f} h")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from benchmark.data.build import DATASETS
    from benchmark.data.info import describe
    from benchmark.datasets import load_dataset

    for name in [args.name] if args.name else DATASETS:
        print(describe(load_dataset(name, quick=args.quick), distribution=bool(args.name)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="melbench",
        description="Benchmark self-supervised Mel-spectrogram upstreams against the spectrogram itself.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_set(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="upstream option (repeatable)"
        )

    def add_tasks_file(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tasks-file", default=str(DEFAULT_TASKS), help="tasks file (default: the repo's tasks.yaml)")

    p = sub.add_parser("list", help="list discovered upstreams and the tasks in tasks.yaml")
    add_tasks_file(p)
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser(
        "check",
        help="validate an upstream against the contract",
        description="Run the contract checks (declared facts, frames vs duration, dtype, NaN/Inf, "
        "determinism, batch vs single, silence, very short input, layers). Exit 1 on any failure.",
    )
    p.add_argument("upstream", help="upstream name (see `melbench list`) or dotted module path")
    add_set(p)
    p.set_defaults(fn=cmd_check)

    p = sub.add_parser(
        "extract",
        help="extract features of a file or folder (cached under $MELBENCH_HOME)",
        description="Extract frame features for an audio file or every audio file under a folder. "
        "Features are cached per upstream configuration and file content; prints each shape and "
        "the throughput in x realtime.",
    )
    p.add_argument("upstream", help="upstream name or dotted module path")
    p.add_argument("audio", help="audio file or folder")
    p.add_argument("--out", help="also write <stem>.npy files to this folder")
    p.add_argument("--layers", action="store_true", help="keep every hidden layer: (layers, frames, dim)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_set(p)
    p.set_defaults(fn=cmd_extract)

    p = sub.add_parser(
        "pretrain",
        help="pretrain a self-supervised upstream on a corpus (checkpoints under $MELBENCH_HOME)",
        description="Pretrain UPSTREAM (mockingjay, audio_albert, tera, apc, wav2vec) on a named corpus "
        "or any folder of audio. Checkpoints go to $MELBENCH_HOME/checkpoints/<upstream>/<corpus>-<preset>/ "
        "unless --out is given; --resume continues the last checkpoint exactly. Multi-process: "
        "`torchrun --nproc_per_node N -m benchmark pretrain ...`.",
    )
    p.add_argument("upstream", help="upstream name")
    p.add_argument("--corpus", default=DEFAULT_CHECKPOINT.corpus,
                   help=f"music, speech, mix, or a path to audio (default: {DEFAULT_CHECKPOINT.corpus}, as `melbench run`)")
    p.add_argument("--quick", action="store_true", help="use the quick build of a named corpus")
    p.add_argument("--preset", default=DEFAULT_CHECKPOINT.preset,
                   help=f"tiny, small, base or large (default: {DEFAULT_CHECKPOINT.preset})")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="total optimiser steps (default: the preset's max_steps)")
    length.add_argument("--minutes", type=float, help="stop after this many minutes of training")
    p.add_argument("--out", help="checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in the folder")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (default 200)")
    p.add_argument("--val-every", type=int, default=200, help="steps between validation losses (default 200)")
    p.add_argument("--snapshots", metavar="STEPS",
                   help="also keep the weights of these steps (e.g. 0,500,1000) under OUT/steps/: step 0 is the "
                        "untrained control; `melbench run` probes them as NAME[random] and NAME[step=N]")
    p.add_argument("--stop-after", type=int, help="stop at this step as if interrupted (resume later)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_set(p)
    p.set_defaults(fn=cmd_pretrain)

    p = sub.add_parser(
        "run",
        help="the whole benchmark: features, probes at every label fraction and seed, report",
        description="Run every (upstream, task, label fraction, seed) in tasks.yaml: prepare each upstream "
        "(its pretrained checkpoint), extract and cache features, train probes, append each result to "
        "OUT/runs.jsonl, and write the report. Started again after a kill, it skips what is done.",
    )
    p.add_argument("--quick", action="store_true", help="quick corpus and tiny presets: a few minutes on 2 cores")
    p.add_argument("--upstreams", help="comma-separated upstream names (default: all discovered)")
    p.add_argument("--tasks", help="comma-separated task names (default: all in the tasks file)")
    p.add_argument("--fractions", help="comma-separated label fractions, overriding the tasks file")
    p.add_argument("--seeds", type=int, help="seeds per fraction, overriding the tasks file")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    add_tasks_file(p)
    p.add_argument("--no-layer-sweep", action="store_true", help="skip the per-layer probes")
    p.add_argument("--pretrain-steps", type=int, metavar="N",
                   help=f"pretrain each self-supervised upstream for N steps (default {DEFAULT_CHECKPOINT.steps}; about "
                        "220 steps a minute for the small preset on 2 CPU cores) into its own checkpoint folder, with "
                        "snapshots at 1/8, 1/4 and 1/2: a larger budget extends the pretraining-compute curve")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="load option of the one upstream besides mel, e.g. --upstreams mel,hear:pkg.mod --set "
                   "weights=PATH (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser(
        "ablate", help="choose a pretraining recipe on validation splits: pretrain each arm, probe, never score test",
        description="FILE (YAML) names an upstream, the base recipe, tasks, fractions, seeds and arms (config "
        "overrides). Each arm is pretrained and probed like `melbench run`, scored on the validation split only, "
        "against Mel on the same subsets; writes OUT/ablation.md and ablation.json. Resumable.",
    )
    p.add_argument("file", help="ablation file, e.g. docs/ablations/mockingjay_small.yaml")
    p.add_argument("--out", help="output folder (default: results/ablations/<file stem>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(fn=cmd_ablate)

    p = sub.add_parser("report", help="regenerate tables, plots and REPORT.md from OUT/runs.jsonl")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser(
        "bench", help="time pretraining, extraction and probes side by side with s3prl; writes OUT/bench.json",
        description="Time melbench's pretraining step, extraction and cached probes against s3prl's own model at "
        "the same configuration (when the [s3prl] extra is installed), plus scaling with clip length and batch "
        "size and, on a GPU, model FLOPs utilisation. Figures are medians over repeats with min and max.",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the models run (default: cpu)")
    p.add_argument("--preset", default="base", help="model size of the SSL upstreams (default: base = s3prl's "
                   "Mockingjay base, 3 x 768)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per step or batch (default: 8)")
    p.add_argument("--clip-s", type=float, default=10.0, help="clip length in seconds (default: 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure, after a warm-up (default: 3)")
    p.add_argument("--compile", action="store_true", help="also time the pretraining step under torch.compile")
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds (a smoke test, not a measurement)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser(
        "to-s3prl", help="write a melbench Mockingjay / TERA / Audio ALBERT / APC checkpoint in s3prl's format",
        description="Write CHECKPOINT (a melbench checkpoint folder) as an s3prl checkpoint file that s3prl's "
        "own classes load (keys Transformer, SpecHead, Upstream_Config for the transformer family; config, model "
        "for APC); it takes melbench's log-Mel frames as input (the corpus normalisation is folded into the input "
        "projection).",
    )
    p.add_argument("checkpoint", help="melbench checkpoint folder (config.json + model.safetensors), or an upstream "
                   "name for the checkpoint `melbench run` pretrains")
    p.add_argument("out", help="s3prl checkpoint file to write")
    p.set_defaults(fn=cmd_to_s3prl)

    data = sub.add_parser("data", help="build and inspect the embedded datasets and pretraining corpora")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    p = data_sub.add_parser(
        "build",
        help="build (or complete) the embedded datasets and corpora under $MELBENCH_HOME/data",
        description="Render notes and scores through the Debian soundfonts, synthesise speech with "
        "Festival, and (full build) decode the Debian game-music packages; write a manifest per "
        "dataset and corpus, check for leaks, print a summary. Idempotent: a second run does no work.",
    )
    p.add_argument("--quick", action="store_true", help="small build for tests and CI (about a minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    games = p.add_mutually_exclusive_group()
    games.add_argument("--games", dest="games", action="store_const", const=True, default=None,
                       help="include game-music recordings (default: full build only)")
    games.add_argument("--no-games", dest="games", action="store_const", const=False,
                       help="leave game-music recordings out")
    p.set_defaults(fn=cmd_data_build)
    p = data_sub.add_parser(
        "info",
        help="splits, counts, hours and label distribution of a dataset",
        description="NAME is an embedded dataset, a dataset folder, a CSV manifest or LOADER:PATH "
        "(gtzan, magnatagatune, nsynth, nsynth-pitch, librispeech, timit). Without NAME: every embedded dataset.",
    )
    p.add_argument("name", nargs="?", help="dataset name or path")
    p.add_argument("--quick", action="store_true", help="the quick build")
    p.set_defaults(fn=cmd_data_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `melbench` console script.

    Args:
        argv: arguments (default `sys.argv[1:]`).

    Returns:
        Exit code: 0 success, 1 a check or job failed, 2 a usage or input error.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except MelbenchError as err:
        if args.debug:
            traceback.print_exc()
        print(f"melbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("melbench: interrupted", file=sys.stderr)
        return 130
