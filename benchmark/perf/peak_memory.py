"""Peak resident memory of one `melbench run` pair with and without returning freed memory.

    python -m benchmark.perf.peak_memory --upstream bestrq --task phones --out /tmp/peak \
        [--set checkpoint=PATH]

Runs the same command twice, each in a fresh process with its own empty feature cache (the
embedded data and checkpoints of `$MELBENCH_HOME` are shared through links, so both arms extract
and probe alike): once as `melbench run` is (`benchmark.memory.release_freed_memory` after each
extraction and probe run) and once, the reference, with that call made a no-op, i.e. glibc's
allocator keeping what it was given. Prints and writes OUT/peak_memory.json: each arm's peak
resident set (`ru_maxrss`) and wall time, and their ratios. One label fraction and seed and no
per-layer sweep keep it to minutes; `--set checkpoint=` a snapshot folder (which has no
snapshots of its own) keeps the control and curve rows out. Pretrain the checkpoint first
(`melbench pretrain`, or a `melbench run`): otherwise the first arm pretrains it and the two
arms no longer do the same work.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.atomic import atomic_write
from benchmark.home import melbench_home

ARMS = ("kept", "released")  # the reference first
SHARED = ("data", "checkpoints", "logmel")  # what both arms read from the user's $MELBENCH_HOME

# Runs one arm in its own interpreter and prints its peak RSS; "kept" disables the release first.
CHILD = """
import resource, sys
from benchmark import memory
if sys.argv[1] == "kept":
    memory.release_freed_memory = lambda: False
from benchmark.cli import main
code = main(sys.argv[2:])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def _home(arm_dir: Path, source: Path) -> Path:
    """A MELBENCH_HOME whose data and checkpoints are links to `source`'s, its features empty."""
    home = arm_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        if (source / name).exists() and not (home / name).exists():
            (home / name).symlink_to((source / name).resolve())
    return home


def run_arm(arm: str, run_args: list[str], out: Path) -> dict[str, float]:
    """One arm in a fresh process.

    Args:
        arm: "kept" (freed memory stays with the allocator) or "released".
        run_args: the `melbench run` arguments (without `--out`).
        out: the benchmark folder.

    Returns:
        `peak_rss_gb` and `wall_s`.
    """
    arm_dir = out / arm
    if arm_dir.exists():  # its records and feature cache would make the arm skip all the work it measures
        sys.exit(f"peak_memory: {arm_dir} exists; give an --out folder without earlier arms")
    env = {**os.environ, "MELBENCH_HOME": str(_home(arm_dir, melbench_home()))}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, arm, "run", *run_args, "--out", str(arm_dir / "results"),
                           "--quiet"], env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - start
    peaks = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK_KB")]
    if done.returncode != 0 or not peaks:
        sys.exit(f"peak_memory: arm {arm} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return {"peak_rss_gb": round(int(peaks[0]) / 2**20, 3), "wall_s": round(wall_s, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", default="bestrq")
    parser.add_argument("--task", default="phones")
    parser.add_argument("--fraction", default="0.01")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="upstream option")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    run_args = ["--upstreams", args.upstream, "--tasks", args.task, "--fractions", args.fraction, "--seeds", "1",
                "--no-layer-sweep", *[f"--set={kv}" for kv in args.set]]
    arms = {arm: run_arm(arm, run_args, out) for arm in ARMS}
    result = {"command": ["melbench", "run", *run_args], "arms": arms,
              "peak_ratio_released_vs_kept": round(arms["released"]["peak_rss_gb"] / arms["kept"]["peak_rss_gb"], 3),
              "wall_ratio_released_vs_kept": round(arms["released"]["wall_s"] / arms["kept"]["wall_s"], 3)}
    with atomic_write(out / "peak_memory.json", "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
