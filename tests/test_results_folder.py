"""The results kept in the repository are what `melbench report` makes of their records: in
`results/` and in every folder under it that keeps records, the tables and REPORT.md are
regenerated from that folder's `runs.jsonl.xz` (the records, compressed to stay small in git)
byte for byte."""

import lzma
from pathlib import Path

import pytest

from benchmark.report.write import write_report
from benchmark.tasks import load_report_spec

RESULTS = Path(__file__).resolve().parents[1] / "results"
TEXT = ("REPORT.md", "leaderboard.md", "leaderboard.csv")
KEPT = sorted(RESULTS.rglob("runs.jsonl.xz"))


def test_the_default_run_is_kept() -> None:
    assert (RESULTS / "runs.jsonl.xz") in KEPT, "results/runs.jsonl.xz, the default run's records, is missing"


@pytest.mark.parametrize("kept", KEPT, ids=[str(p.parent.relative_to(RESULTS.parent)) for p in KEPT])
def test_the_kept_results_are_generated_from_the_kept_records(kept: Path, tmp_path: Path) -> None:
    folder = kept.parent
    (tmp_path / "runs.jsonl").write_bytes(lzma.decompress(kept.read_bytes()))
    written = write_report(tmp_path, load_report_spec())  # the settings `melbench run` reads
    for name in TEXT:
        assert (tmp_path / name).read_text() == (folder / name).read_text(), f"{folder / name} is stale"
    assert sorted(p.name for p in written if p.suffix == ".png") == sorted(p.name for p in folder.glob("*.png"))
