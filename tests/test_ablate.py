"""`melbench ablate`: arms pretrained and probed on validation only, the test split never scored."""

from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.runs import read_runs
from _ssl_fixtures import write_corpus

DEMO_TASKS = str(Path(__file__).parent / "demo_tasks.yaml")


def _ablation(tmp_path: Path, arms: str) -> Path:
    corpus = write_corpus(tmp_path / "audio", n_files=2, seconds=1.0)
    path = tmp_path / "ablation.yaml"
    path.write_text(f"upstream: apc\ncorpus: {corpus}\npreset: tiny\nsteps: 2\ntasks: [demo]\nfractions: [1.0]\n"
                    f"seeds: 2\ntasks_file: {DEMO_TASKS}\narms:\n{arms}")
    return path


def test_arms_are_judged_on_validation_and_test_is_never_scored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _ablation(tmp_path, "  preset: {}\n  lr1e-2: {lr: 0.01}\n")
    out = tmp_path / "out"
    assert main(["ablate", str(path), "--out", str(out), "--quiet"]) == 0
    table = (out / "ablation.md").read_text()
    assert "| preset | preset |" in table and "| lr1e-2 | lr=0.01 |" in table and "| mel | - |" in table
    for runs in (out / "mel" / "runs.jsonl", out / "arms" / "lr1e-2" / "runs.jsonl"):
        records = read_runs(runs)
        assert len(records) == 2 and all(r["validation_only"] and r["metrics"] == {} for r in records)
        assert all(r["probe_valid_score"] == max(p["valid_score"] for p in r["probe_valid_curve"]) for r in records)
    assert not (out / "mel" / "REPORT.md").exists()
    capsys.readouterr()
    assert main(["ablate", str(path), "--out", str(out), "--quiet"]) == 0  # resumed: nothing is redone
    printed = capsys.readouterr().out
    assert "ablation arm" not in printed and printed.count("0 probe runs, 2 already done") == 3


def test_an_unknown_override_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _ablation(tmp_path, "  typo: {mask_proportoin: 0.5}\n")
    assert main(["ablate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown apc option 'mask_proportoin'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "docs" / "ablations").glob("*.yaml")),
                         ids=lambda path: path.stem)
def test_every_ablation_in_the_docs_loads_with_arms_its_upstream_takes(path: Path) -> None:
    from benchmark.pretraining.ablate import load_ablation
    from benchmark.tasks import load_tasks

    cfg = load_ablation(path)  # keys, types, and every arm's overrides checked against the upstream's config
    assert set(cfg.tasks) <= set(load_tasks(cfg.tasks_file))  # the tasks it judges on exist
