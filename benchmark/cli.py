"""The `melbench` command line: the parser and the entry point; each subcommand's function is in
`benchmark.commands`, a thin layer over a library function."""

import argparse
import sys
import traceback

from benchmark.pretraining.checkpoints import DEFAULT_CHECKPOINT
from benchmark.commands import (cmd_ablate, cmd_bench, cmd_check, cmd_data_build, cmd_data_info, cmd_extract, cmd_list,
                                cmd_pretrain, cmd_report, cmd_run, cmd_to_s3prl)
from benchmark.errors import MelbenchError
from benchmark.tasks import DEFAULT_TASKS_FILE



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
        p.add_argument("--tasks-file", default=str(DEFAULT_TASKS_FILE), help="tasks file (default: the repo's tasks.yaml)")

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
        description="Pretrain UPSTREAM (any upstream whose module declares a SPEC, those `melbench list` says melbench pretrains) on a named corpus "
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
                   help=f"pretrain each self-supervised upstream for N steps (default {DEFAULT_CHECKPOINT.steps}; 400 "
                        "steps of the small preset take 1.4-1.8 min on 2 CPU cores) into its own checkpoint folder, with "
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
    add_tasks_file(p)  # its `report:` section: the false-discovery rate and the smallest effect counted as a win
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
