"""Merge kept runs files into one folder whose report compares them under one correction.

    python scripts/merge_runs.py results/ssl_12800 results/{mockingjay,bestrq,tera,audio_albert,wav2vec}_12800
    melbench report --out results/ssl_12800 && xz -9kf results/ssl_12800/runs.jsonl

Reads each source folder's `runs.jsonl.xz` and writes OUT/runs.jsonl: the records the merged
report uses (`benchmark.report.provenance.current_records` over all of them: the newest protocol
of each task, the newest code and checkpoint of each upstream), each probe run once (the first
record of each `run_id`: Mel's runs, made again in every source folder, are the same probe). The
records the report would leave out stay in the source folders.
"""

import json
import lzma
import sys
from pathlib import Path

from benchmark.report.provenance import current_records


def merged_records(sources: list[Path]) -> list[str]:
    """The merged runs file's lines.

    Args:
        sources: folders holding a `runs.jsonl.xz`.

    Returns:
        One JSON line per kept probe run, folders in name order.
    """
    lines, seen = [], set()
    for folder in sorted(sources):  # the first record of a run_id comes from the first folder by name
        for line in lzma.decompress((folder / "runs.jsonl.xz").read_bytes()).decode().splitlines():
            record = json.loads(line)
            if record["run_id"] not in seen:
                seen.add(record["run_id"])
                lines.append(line)
    kept, _ = current_records([json.loads(line) for line in lines])
    keep = {r["run_id"] for r in kept}
    return [line for line in lines if json.loads(line)["run_id"] in keep]


def main(argv: list[str] | None = None) -> int:
    """Write OUT/runs.jsonl from the SOURCE folders (command line: see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        sys.exit("usage: merge_runs.py OUT SOURCE SOURCE [SOURCE ...]")
    out, sources = Path(args[0]), [Path(a) for a in args[1:]]
    missing = [str(s) for s in sources if not (s / "runs.jsonl.xz").is_file()]
    if missing:
        sys.exit(f"merge_runs: {missing[0]}: no runs.jsonl.xz")
    out.mkdir(parents=True, exist_ok=True)
    lines = merged_records(sources)
    (out / "runs.jsonl").write_text("".join(line + "\n" for line in lines))
    print(f"{out / 'runs.jsonl'}: {len(lines)} records from {len(sources)} folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
