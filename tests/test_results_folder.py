"""The results kept in the repository are what `melbench report` makes of their records: the
tables and REPORT.md in `results/` are regenerated from `results/runs.jsonl.xz` (the records,
compressed to stay small in git) byte for byte."""

import lzma
from pathlib import Path

from benchmark.report.write import write_report
from benchmark.tasks import load_report_spec

RESULTS = Path(__file__).resolve().parents[1] / "results"
TEXT = ("REPORT.md", "leaderboard.md", "leaderboard.csv")


def test_the_kept_results_are_generated_from_the_kept_records(tmp_path: Path) -> None:
    kept = RESULTS / "runs.jsonl.xz"
    assert kept.is_file(), "results/runs.jsonl.xz, the default run's records, is missing"
    (tmp_path / "runs.jsonl").write_bytes(lzma.decompress(kept.read_bytes()))
    written = write_report(tmp_path, load_report_spec())  # the settings `melbench run` reads
    for name in TEXT:
        assert (tmp_path / name).read_text() == (RESULTS / name).read_text(), f"results/{name} is stale"
    assert sorted(p.name for p in written if p.suffix == ".png") == sorted(p.name for p in RESULTS.glob("*.png"))
