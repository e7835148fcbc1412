"""`runs.jsonl`: one JSON record per probe run, appended atomically under a run lock.

A record is written with one `write` of a complete line followed by fsync; a line torn by a
kill is the last one, and `read_runs` drops it (and `RunLog` cuts it off before appending),
so a resumed run sees only complete records. A run whose `run_id` is already recorded is
skipped, which is how `melbench run` resumes.
"""

import fcntl
import functools
import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.errors import MelbenchError


def run_id(fields: dict[str, Any]) -> str:
    """A stable id for a probe run: sha256 of its identifying fields (canonical JSON)."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def read_runs(path: Path) -> list[dict[str, Any]]:
    """All complete records of a runs file (a torn last line is ignored).

    Args:
        path: the runs.jsonl file; a missing file has no records.

    Returns:
        The records in file order.
    """
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                break  # torn by a kill mid-write: not a record
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise MelbenchError(f"{path}:{n}: not a JSON record; fix or remove that line") from None
    return records


@functools.cache  # once per process: it runs git twice
def git_revision() -> str:
    """The melbench checkout's git commit (with `+dirty` for local changes), or "unknown"."""
    repo = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if rev.returncode != 0:
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def now_utc() -> str:
    """The current time as ISO 8601 UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunLog:
    """Exclusive access to an output folder's runs.jsonl for one `melbench run`.

    Args:
        out_dir: the results folder.

    Raises:
        MelbenchError: another process holds the folder's lock.
    """

    def __init__(self, out_dir: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path = out_dir / "runs.jsonl"
        self._lock = open(out_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise MelbenchError(f"{out_dir}: another melbench run is writing here; wait for it or use --out") from None
        self._drop_torn_tail()
        self._records = {r["run_id"]: r for r in read_runs(self.path)}
        self.done = set(self._records)

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record (it must have a `run_id`) as a single fsynced line."""
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._records[record["run_id"]] = record
        self.done.add(record["run_id"])

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The record of `run_id`, or None if it is not in runs.jsonl."""
        return self._records.get(run_id)

    def close(self) -> None:
        """Release the lock."""
        self._lock.close()

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
