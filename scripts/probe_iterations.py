"""Does the linear probe's L-BFGS iteration cap change the comparison? Validation split only.

    python scripts/probe_iterations.py --upstreams mel,mockingjay --tasks pitch,instrument,phones \
        --fractions 0.01,0.05 --scales 1,4 --out /tmp/probe_iterations

For each scale, every task's `lbfgs_iters` (tasks.yaml) is multiplied by it and the upstreams'
default checkpoints (those `melbench run` uses, pretrained into $MELBENCH_HOME if missing) are
probed as `melbench run` probes them, on the same labelled subsets, scoring the validation split
only (`RunConfig.validation_only`: the test split is never scored, so nothing chosen from this
table has seen it). Prints, per (task, fraction, upstream, scale), the selected probe's validation
score (mean over seeds), its difference from the first upstream's at the same scale, the share of
grid points whose fit stopped at the cap, and the probe seconds. Resumable: runs already in
OUT/x<scale>/runs.jsonl are skipped.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmark.commands import comma_list
from benchmark.errors import MelbenchError
from benchmark.measurements import pair_runners
from benchmark.run import RunConfig
from benchmark.runs import RunLog, read_runs
from benchmark.tasks import load_tasks, select_tasks


def probe_all(upstreams: tuple[str, ...], tasks: dict, fractions: tuple[float, ...], seeds: int, scale: int,
              out_dir: Path) -> None:
    """Validation-only probe runs of every (upstream, task) at `scale` x each task's `lbfgs_iters`."""
    scaled = {name: replace(spec, lbfgs_iters=spec.lbfgs_iters * scale) for name, spec in tasks.items()}
    cfg = RunConfig(upstreams=upstreams, tasks=scaled, out_dir=out_dir, fractions=fractions, seeds=seeds,
                    layer_sweep=False, progress=False, validation_only=True)
    with RunLog(out_dir) as log:
        for runner in pair_runners(cfg, log):
            for job in runner.pending():
                runner.run(*job)
                print(f"  x{scale} {runner.upstream} {runner.task} fraction={job[0]} seed={job[1]} done", flush=True)


def table(upstreams: tuple[str, ...], tasks: dict, scales: list[int], out: Path) -> list[str]:
    """Markdown rows: validation score, difference from the first upstream, share at the cap, seconds."""
    rows = ["| task | labels | upstream | scale | L-BFGS iterations | valid score | minus " + upstreams[0]
            + " | grid points at the cap | probe s |", "|---|---|---|---|---|---|---|---|---|"]
    recs = {scale: [r for r in read_runs(out / f"x{scale}" / "runs.jsonl") if r.get("validation_only")]
            for scale in scales}
    for task in tasks:
        fractions = sorted({r["fraction"] for rs in recs.values() for r in rs if r["task"] == task})
        for fraction in fractions:
            for upstream in upstreams:
                for scale in scales:
                    def mine(name: str) -> dict[int, dict]:
                        return {r["seed"]: r for r in recs[scale]
                                if (r["task"], r["fraction"], r["upstream"]) == (task, fraction, name)}
                    cell, base = mine(upstream), mine(upstreams[0])
                    if not cell:
                        continue
                    iters = tasks[task].lbfgs_iters * scale
                    score = np.mean([r["probe_valid_score"] for r in cell.values()])
                    diff = np.mean([cell[s]["probe_valid_score"] - base[s]["probe_valid_score"]
                                    for s in cell if s in base])
                    points = [p for r in cell.values() for p in r["probe_valid_curve"]]
                    capped = np.mean([p["epochs"] >= iters for p in points])
                    seconds = np.mean([r["train_s"] for r in cell.values()])
                    rows.append(f"| {task} | {fraction:.0%} | {upstream} | x{scale} | {iters} | {score:.3f} | "
                                f"{diff:+.3f} | {capped:.0%} | {seconds:.1f} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstreams", default="mel,mockingjay", help="the first is the reference")
    parser.add_argument("--tasks", default="pitch,instrument,phones")
    parser.add_argument("--fractions", default="0.01,0.05")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scales", default="1,4", help="multiples of each task's lbfgs_iters")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        tasks = select_tasks(load_tasks(), comma_list(args.tasks))
    except MelbenchError as err:
        sys.exit(f"probe_iterations: {err}")
    upstreams, scales = comma_list(args.upstreams), [int(s) for s in comma_list(args.scales)]
    fractions = tuple(float(f) for f in comma_list(args.fractions))
    out = Path(args.out)
    for scale in scales:
        probe_all(upstreams, tasks, fractions, args.seeds, scale, out / f"x{scale}")
    print("\n".join(table(upstreams, tasks, scales, out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
