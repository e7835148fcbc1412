"""`melbench run --quick` on an embedded task with a self-supervised upstream: the run
pretrains the missing checkpoint with its snapshots, probes the model, its untrained control and
the pretraining-compute curve, and reports; a second run reuses it all."""

from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.runs import read_runs


def test_quick_run_pretrains_missing_checkpoint_then_reuses_it(
    quick_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MELBENCH_HOME", str(quick_home))
    out = tmp_path / "results"
    args = ["run", "--quick", "--upstreams", "mel,mockingjay", "--tasks", "instrument",
            "--fractions", "0.1,1", "--seeds", "2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "mockingjay: pretraining tiny on mix-quick for 150 steps" in printed
    checkpoint = quick_home / "checkpoints" / "mockingjay" / "mix-quick-tiny" / "model.safetensors"
    assert checkpoint.is_file()
    records = read_runs(out / "runs.jsonl")
    ssl = [r for r in records if r["upstream"] == "mockingjay" and r["variant"] is None]
    # 2 fractions x 2 seeds with the weighted layers, plus one probe per hidden state (3 in tiny).
    assert len(ssl) == 4 + 3 and all(r["checkpoint_sha256"] for r in ssl)
    # The control (step 0) gets every fraction and seed; the snapshots at 1/8, 1/4 and 1/2 of
    # the 150 steps the smallest and largest fraction: all the same architecture and corpus statistics.
    control = [r for r in records if r["variant"] == "random"]
    snapshots = sorted({r["pretrain_step"] for r in records if (r["variant"] or "").startswith("step=")})
    assert len(control) == 4 and snapshots == [19, 38, 75]
    assert len([r for r in records if r["pretrain_step"] in snapshots]) == 3 * 4
    for r in control:
        prov = r["upstream_provenance"]
        assert (prov["preset"], prov["params"], prov["steps"]) == ("tiny", ssl[0]["upstream_provenance"]["params"], 0)
        assert r["checkpoint_sha256"] != ssl[0]["checkpoint_sha256"]
    assert len([r for r in records if r["upstream"] == "mel"]) == 4
    prov = ssl[0]["upstream_provenance"]  # the pretraining behind the checkpoint, in every record
    assert (prov["preset"], prov["corpus"], prov["steps"], prov["batch_size"]) == ("tiny", "mix-quick", 150, 4)
    assert prov["corpus_train_hours"] > 0 and prov["pretrain_s"] > 0 and prov["params"] > 0
    assert records[0]["dataset_hours"]["train"] > 0
    assert (out / "pretraining_instrument.png").stat().st_size > 0 and (out / "summary.png").stat().st_size > 0
    report = (out / "REPORT.md").read_text()
    assert "| instrument | mockingjay | 10% |" in report  # architecture vs pretraining, from the control
    assert "| instrument | mockingjay | 10% | 0.00 h: " in report  # the compute curve starts at the control
    assert f"| mockingjay | tiny | {prov['params'] / 1e6:.2f} M | mix-quick, {prov['corpus_train_hours']:.2f} h | " \
           f"150 steps x 4 x 1 s |" in report
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pretraining tiny" not in printed and "0 probe runs, 27 already done" in printed


def test_a_control_with_the_features_of_an_earlier_one_gets_its_runs(
    quick_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Mockingjay and TERA build the same encoder at the same sizes from the same seed: their
    # untrained controls are one model, probed once and counted once.
    monkeypatch.setenv("MELBENCH_HOME", str(quick_home))
    out = tmp_path / "results"
    args = ["run", "--quick", "--upstreams", "mel,mockingjay,tera", "--tasks", "instrument", "--fractions", "1",
            "--seeds", "2", "--no-layer-sweep", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "tera[random] x instrument: the features of mockingjay[random]: 2 of its runs copied" in capsys.readouterr().out
    records = read_runs(out / "runs.jsonl")
    by_label = {(r["upstream"], r["variant"], r["seed"]): r for r in records}
    for seed in (0, 1):
        first, copy = by_label[("mockingjay", "random", seed)], by_label[("tera", "random", seed)]
        assert copy["same_features_as"] == "mockingjay[random]" and "same_features_as" not in first
        assert (copy["metrics"], copy["bootstrap"]) == (first["metrics"], first["bootstrap"])
        assert copy["upstream_provenance"]["steps"] == 0 and copy["checkpoint_sha256"] != first["checkpoint_sha256"]
        assert by_label[("tera", None, seed)]["metrics"] != first["metrics"]  # the pretrained models differ
    report = (out / "REPORT.md").read_text()
    assert "tera[random] gave exactly the results of mockingjay[random] in every probe run" in report
    assert "| instrument | tera | 100% |" in report  # TERA's pretraining gain, over its (shared) control
