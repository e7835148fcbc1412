"""Bit-identity check for a refactor: run the same small work on two source trees, compare.

    python scripts/identity_check.py OLD_TREE NEW_TREE --audio DIR --runs runs.jsonl --out DIR

For each tree (its modules first on `PYTHONPATH`, `MELBENCH_HOME` empty): pretrain every
upstream that declares a `SPEC` (tiny preset, 6 steps, snapshots at 0 and 3), extract every
built-in upstream's features of the audio (every layer; the learned ones from those
checkpoints), and regenerate the report from a copy of the runs file. Then compare the sha256 of
every weight, optimiser and feature tensor and of the leaderboard files. Checkpoint records
(`config.json`, safetensors metadata) are left out: their wall time `pretrain_s` differs between
any two runs.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open

ADAPTERS = ("hear", "s3prl", "hf")  # upstreams that need a user's model: not part of the check


def _cli(tree: Path, home: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree), "MELBENCH_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _tensor_hashes(path: Path) -> dict[str, str]:
    with safe_open(str(path), "np") as f:
        return {k: hashlib.sha256(np.ascontiguousarray(f.get_tensor(k)).tobytes()).hexdigest() for k in f.keys()}


def run_tree(tree: Path, out: Path, audio: Path, runs: Path) -> dict[str, object]:
    """Do the work on one tree; return the hashes of what it wrote."""
    shutil.rmtree(out, ignore_errors=True)
    home = out / "home"
    names = sorted(p.stem for p in (tree / "upstreams").glob("[a-z]*.py") if p.stem not in ADAPTERS)
    for name in names:
        options = []
        if "\nSPEC = " in (tree / "upstreams" / f"{name}.py").read_text():
            ckpt = out / "ckpt" / name
            _cli(tree, home, "pretrain", name, "--corpus", str(audio), "--preset", "tiny", "--steps", "6",
                 "--snapshots", "0,3", "--out", str(ckpt), "--quiet")
            options = ["--set", f"checkpoint={ckpt}"]
        _cli(tree, home, "extract", name, str(audio), "--layers", *options, "--out", str(out / "feat" / name), "--quiet")
    (out / "report").mkdir(parents=True)
    shutil.copy(runs, out / "report" / "runs.jsonl")
    _cli(tree, home, "report", "--out", str(out / "report"))
    hashes: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.suffix == ".safetensors" and rel.startswith("ckpt/"):
            hashes[rel] = _tensor_hashes(path)
        elif path.suffix == ".npy" and rel.startswith("feat/"):
            hashes[rel] = hashlib.sha256(np.load(path).tobytes()).hexdigest()
        elif path.name.startswith("leaderboard."):
            hashes[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--audio", type=Path, required=True, help="a folder of a few audio files")
    parser.add_argument("--runs", type=Path, required=True, help="a runs.jsonl to regenerate the report from")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    old = run_tree(args.old.resolve(), args.out / "old", args.audio.resolve(), args.runs)
    new = run_tree(args.new.resolve(), args.out / "new", args.audio.resolve(), args.runs)
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    tensors = sum(len(v) if isinstance(v, dict) else 1 for v in old.values())
    (args.out / "identity.json").write_text(json.dumps({"old": old, "new": new, "differ": differ}, indent=1))
    if differ:
        print(f"{len(differ)} of {len(old)} files differ: " + ", ".join(differ[:10]))
        return 1
    print(f"identical: {len(old)} files ({tensors} tensors and tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
