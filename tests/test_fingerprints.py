"""Nothing stale: results follow the data, audio and code behind them; hashes and cache checks are
memoised by file stamp; `melbench run`'s checkpoint is the default everywhere."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark import fingerprints
from benchmark.cache import FeatureCache, cache_key
from benchmark.cli import main
from benchmark.extract import extract_files
from benchmark.fingerprints import PROJECT_ROOT, code_fingerprint, content_sha256, source_closure
from benchmark.pretraining import checkpoints
from benchmark.pretraining.checkpoints import CheckpointPlan
from benchmark.registry import available_upstreams, load_module
from benchmark.runs import read_runs

TONES_HZ = {"low": 220.0, "mid": 440.0, "high": 880.0}
PAST_NS = 1_600_000_000 * 10**9  # a modification time long ago: stamps are memoised only for settled files


def _tone(path: Path, freq_hz: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * freq_hz * (1 + 0.02 * rng.standard_normal()) * t) + 0.01 * rng.standard_normal(8000)
    sf.write(path, wave.astype(np.float32), 16000)


def _manifest(folder: Path, per_class: int = 8) -> Path:
    """A CSV manifest of tones in three classes, with a `name` column."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rows = [["path", "label", "name"]]
    for c, (label, freq) in enumerate(TONES_HZ.items()):
        for i in range(per_class):
            _tone(folder / "audio" / f"{label}{i}.wav", freq, seed=100 * c + i)
            rows.append([f"audio/{label}{i}.wav", label, "tones"])
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _shuffle_labels(manifest: Path) -> None:
    with open(manifest, newline="") as f:
        rows = list(csv.reader(f))
    labels = [r[1] for r in rows[1:]]
    np.random.default_rng(0).shuffle(labels)
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *[[r[0], lab, r[2]] for r, lab in zip(rows[1:], labels)]])


def _tasks_file(path: Path, manifests: dict[str, Path], fractions: str = "[1.0]", seeds: int = 2) -> Path:
    lines = ["tasks:"]
    for task, manifest in manifests.items():
        lines += [f"  {task}:", f"    dataset: {manifest}", "    level: clip", "    labels: multiclass",
                  "    metrics: [accuracy]", f"    fractions: {fractions}", f"    seeds: {seeds}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run_mel(tasks: Path, out: Path, capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(["run", "--upstreams", "mel", "--tasks-file", str(tasks), "--out", str(out), "--quiet"]) == 0
    return capsys.readouterr().out


def test_an_edited_manifest_reruns_its_probes_and_only_those(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = _manifest(tmp_path / "a"), _manifest(tmp_path / "b")
    tasks, out = _tasks_file(tmp_path / "tasks.yaml", {"ta": a, "tb": b}), tmp_path / "out"
    assert "4 probe runs, 0 already done" in _run_mel(tasks, out, capsys)
    first = {(r["task"], r["seed"]): r for r in read_runs(out / "runs.jsonl")}
    assert len(first) == 4 and all(r["dataset_sha256"] for r in first.values())
    assert "0 probe runs, 4 already done" in _run_mel(tasks, out, capsys)
    _shuffle_labels(a)
    assert "2 probe runs, 2 already done" in _run_mel(tasks, out, capsys)
    records = read_runs(out / "runs.jsonl")
    new = records[4:]
    assert {r["task"] for r in new} == {"ta"}
    assert all(r["dataset_sha256"] != first[("ta", 0)]["dataset_sha256"] for r in new)
    report = (out / "REPORT.md").read_text()
    assert "**ta**: 2 record(s) of an older dataset fingerprint left out" in report
    assert "**tb**" not in report  # nothing of the other task was left out or rerun


def test_an_edited_audio_file_recomputes_its_features_and_probes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _manifest(tmp_path / "a")
    tasks, out = _tasks_file(tmp_path / "tasks.yaml", {"ta": a}), tmp_path / "out"
    _run_mel(tasks, out, capsys)
    files = sorted((tmp_path / "a" / "audio").glob("*.wav"))
    _tone(files[0], 1000.0, seed=7)  # one recording replaced
    assert "2 probe runs, 0 already done" in _run_mel(tasks, out, capsys)
    _tone(files[1], 1200.0, seed=8)
    report = extract_files("mel", {}, files, layers=True, progress=False, pool=True)  # the run's cache key
    assert [i.cached for i in report.items] == [p != files[1] for p in files]


def _package(root: Path) -> Path:
    """A user package: an upstream, a helper it imports, and an unrelated module."""
    pkg = root / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_helper.py").write_text("SCALE = 1.0\n")
    (pkg / "unrelated.py").write_text("X = 1\n")
    (pkg / "up.py").write_text(
        '"""A user upstream: the Mel baseline times a helper constant."""\n'
        "from upstreams import mel\n"
        "from . import _helper\n\n\n"
        "def load(**options):\n"
        "    upstream = mel.load(**options)\n"
        "    return upstream\n"
    )
    return pkg


def test_code_fingerprint_follows_the_helpers_an_upstream_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  wav_file: Path) -> None:
    pkg = _package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint("userpkg.up", {})
    files, packages = source_closure(pkg / "up.py", "userpkg.up")
    assert pkg / "_helper.py" in files and pkg / "unrelated.py" not in files
    assert all(f.is_relative_to(PROJECT_ROOT) or f.is_relative_to(pkg) for f in files)  # torch is a version, not files
    assert any(p.startswith("torch==") for p in packages)
    (pkg / "unrelated.py").write_text("X = 2\n")
    assert code_fingerprint("userpkg.up", {}) == before  # a module it does not import
    first = extract_files("userpkg.up", {}, [wav_file], progress=False).items[0]
    (pkg / "_helper.py").write_text("SCALE = 2.0\n")
    assert code_fingerprint("userpkg.up", {}) != before
    second = extract_files("userpkg.up", {}, [wav_file], progress=False).items[0]
    assert not second.cached and second.feature_path != first.feature_path  # a new cache key: a miss


def test_every_upstream_fingerprints_its_own_code_and_not_the_report() -> None:
    for name in available_upstreams():  # derived from the registry
        module = load_module(name)
        files, packages = source_closure(Path(module.__file__), module.__name__)
        assert Path(module.__file__).resolve() in files and PROJECT_ROOT / "benchmark/upstream.py" in files
        assert PROJECT_ROOT / "benchmark/report/write.py" not in files and PROJECT_ROOT / "benchmark/cli.py" not in files
        assert any(p.startswith("torch==") for p in packages)
        if hasattr(module, "SPEC"):  # the self-supervised ones run the shared helper
            assert PROJECT_ROOT / "upstreams/_ssl.py" in files
    # the hear adapter's wrapped module counts too
    assert code_fingerprint("hear:benchmark.hear", {}) != code_fingerprint("hear:upstreams._template", {})


def test_content_hashes_are_memoised_by_file_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"one")
    os.utime(path, ns=(PAST_NS, PAST_NS))
    calls = []
    real = fingerprints.file_sha256
    monkeypatch.setattr(fingerprints, "file_sha256", lambda p: calls.append(p) or real(p))
    first = content_sha256(path)
    assert content_sha256(path) == first and len(calls) == 1  # the second came from the memo
    path.write_bytes(b"two")
    os.utime(path, ns=(PAST_NS + 1, PAST_NS + 1))
    assert content_sha256(path) != first and len(calls) == 2
    path.write_bytes(b"six")  # just written: too young to memoise, hashed every time
    assert content_sha256(path) == content_sha256(path) and len(calls) == 4


def test_a_cache_entry_is_checked_once_per_change(wav_file: Path, capsys: pytest.CaptureFixture) -> None:
    entry = extract_files("mel", {}, [wav_file], progress=False).items[0].feature_path
    os.utime(entry, ns=(PAST_NS, PAST_NS))
    assert extract_files("mel", {}, [wav_file], progress=False).items[0].cached  # checked now, and marked
    good = np.load(entry)
    np.save(entry, np.full_like(good, np.nan))  # same size: only the modification time tells
    os.utime(entry, ns=(PAST_NS, PAST_NS))
    cache = FeatureCache(cache_key("mel", {}, False))
    item = entry.stem
    assert cache.get(item) is not None  # not read again: the stamp is the one that was checked
    os.utime(entry, ns=(PAST_NS + 10**9, PAST_NS + 10**9))  # any change of stamp: checked again
    assert cache.get(item) is None and "holds NaN/Inf; recomputing" in capsys.readouterr().out


def test_list_takes_the_tasks_file_and_aligns_long_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = _manifest(tmp_path / "a", per_class=2)
    tasks = _tasks_file(tmp_path / "t.yaml", {"a_task_with_a_long_name": manifest, "short": manifest})
    capsys.readouterr()
    assert main(["list", "--tasks-file", str(tasks)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    columns = {len(line) - len(line[2:].split(" ", 1)[1].lstrip()) for line in lines}
    assert len(columns) == 1, lines  # every description starts in the same column
    assert any("a_task_with_a_long_name" in line for line in lines)
    from benchmark.data.load import load_dataset

    assert load_dataset(str(manifest)).name == "tones"  # the manifest's `name` column


@pytest.fixture
def run_home(quick_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh `$MELBENCH_HOME` on the session's quick data build, with the default checkpoint
    set to a few steps of the tiny preset (the one setting `run`, `extract` and `check` share)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "data").symlink_to(quick_home / "data")
    monkeypatch.setenv("MELBENCH_HOME", str(home))
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT",
                        CheckpointPlan(corpus="mix", preset="tiny", steps=3, quick=True, snapshots=()))
    return home


def test_after_a_run_extract_and_check_use_its_checkpoint(run_home: Path, tmp_path: Path, wav_file: Path,
                                                          capsys: pytest.CaptureFixture,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    demo = str(Path(__file__).parent / "demo_tasks.yaml")
    assert main(["extract", "apc", str(wav_file), "--quiet"]) == 2
    assert "`melbench run --upstreams apc` pretrains it first (3 steps)" in capsys.readouterr().err
    run = ["run", "--upstreams", "mel,apc", "--tasks-file", demo, "--fractions", "1", "--seeds", "1", "--quiet",
           "--no-layer-sweep"]
    assert main([*run, "--out", str(tmp_path / "r1")]) == 0
    assert "apc: pretraining tiny on mix-quick for 3 steps" in capsys.readouterr().out
    assert main(["extract", "apc", str(wav_file), "--quiet"]) == 0
    assert main(["check", "apc"]) == 0
    assert "checks passed" in capsys.readouterr().out
    assert main(["to-s3prl", "apc", str(tmp_path / "apc.ckpt")]) == 0  # the name means the run's checkpoint
    assert f"apc checkpoint {checkpoints.DEFAULT_CHECKPOINT.folder('apc')} ->" in capsys.readouterr().out
    from benchmark import hear

    assert hear.load_model("apc").upstream.provenance["steps"] == 3  # the HEAR export too
    # An explicit checkpoint is used as given: nothing is pretrained in a home that has none.
    given = tmp_path / "given"
    shutil.copytree(checkpoints.DEFAULT_CHECKPOINT.folder("apc"), given)
    other = tmp_path / "home2"
    other.mkdir()
    (other / "data").symlink_to(run_home / "data")
    monkeypatch.setenv("MELBENCH_HOME", str(other))
    assert main([*run, "--out", str(tmp_path / "r2"), "--set", f"checkpoint={given}"]) == 0
    assert "apc: pretraining" not in capsys.readouterr().out
    assert not checkpoints.DEFAULT_CHECKPOINT.folder("apc").exists()
    assert {r["checkpoint_sha256"] for r in read_runs(tmp_path / "r2" / "runs.jsonl") if r["upstream"] == "apc"} == \
           {r["checkpoint_sha256"] for r in read_runs(tmp_path / "r1" / "runs.jsonl") if r["upstream"] == "apc"}


def test_a_kill_during_recomputation_resumes_with_nothing_lost(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = _manifest(tmp_path / "a")
    tasks = _tasks_file(tmp_path / "tasks.yaml", {"ta": manifest}, fractions="[0.25, 1.0]", seeds=3)
    out, reference = tmp_path / "out", tmp_path / "reference"
    _run_mel(tasks, out, capsys)
    _shuffle_labels(manifest)
    _run_mel(tasks, reference, capsys)  # the edited data from scratch
    n_old = len(read_runs(out / "runs.jsonl"))
    cmd = [sys.executable, "-m", "benchmark", "run", "--upstreams", "mel", "--tasks-file", str(tasks), "--out",
           str(out), "--quiet"]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_runs(out / "runs.jsonl")) < n_old + 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_new = len(read_runs(out / "runs.jsonl")) - n_old
    assert 2 <= n_new < 6, "the kill should land mid-recomputation"
    resumed = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{6 - n_new} probe runs, {n_new} already done" in resumed.stdout
    assert (out / "leaderboard.csv").read_text() == (reference / "leaderboard.csv").read_text()


def test_pretrain_steps_gives_its_own_checkpoint_and_the_default_stays(run_home: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    demo = str(Path(__file__).parent / "demo_tasks.yaml")
    # step 0 kept: the untrained control
    monkeypatch.setattr(checkpoints, "DEFAULT_CHECKPOINT", replace(checkpoints.DEFAULT_CHECKPOINT, snapshots=(0.0,)))
    assert main(["run", "--upstreams", "mel,apc", "--tasks-file", demo, "--fractions", "1", "--seeds", "1", "--quiet",
                 "--no-layer-sweep", "--pretrain-steps", "5", "--out", str(tmp_path / "r")]) == 0
    longer = checkpoints.DEFAULT_CHECKPOINT.with_steps(5).folder("apc")
    assert longer.name == "mix-quick-tiny-5steps" and (longer / "model.safetensors").is_file()
    assert "apc: pretraining tiny on mix-quick for 5 steps" in capsys.readouterr().out
    assert not checkpoints.DEFAULT_CHECKPOINT.folder("apc").exists()  # the default checkpoint is another run
    def apc_runs() -> list[dict]:
        return [r for r in read_runs(tmp_path / "r" / "runs.jsonl") if r["upstream"] == "apc"]

    assert {r["upstream_provenance"]["steps"] for r in apc_runs()} == {0, 5}
    control = [r for r in apc_runs() if r["variant"] == "random"]
    assert control
    assert main(["run", "--upstreams", "apc", "--tasks-file", demo, "--fractions", "1", "--seeds", "1", "--quiet",
                 "--no-layer-sweep", "--pretrain-steps", "8", "--out", str(tmp_path / "r")]) == 0
    # a longer schedule starts from the same untrained weights: its control is the one already probed
    assert [r for r in apc_runs() if r["variant"] == "random"] == control
    assert {r["upstream_provenance"]["steps"] for r in apc_runs() if r["variant"] is None} == {5, 8}
    assert main(["run", "--upstreams", "apc", "--tasks-file", demo, "--pretrain-steps", "0", "--out",
                 str(tmp_path / "r")]) == 2


def test_a_checkpoint_fingerprint_follows_its_weights_not_its_wall_time(tmp_path: Path) -> None:
    import json

    import torch

    from benchmark.fingerprints import checkpoint_sha256, path_sha256
    from benchmark.pretraining.train_state import save_checkpoint, save_snapshot

    def pretrained(folder: Path, weight: float, pretrain_s: float) -> Path:
        model = torch.nn.Linear(2, 2)
        torch.nn.init.constant_(model.weight, weight)
        torch.nn.init.zeros_(model.bias)
        optimizer = torch.optim.AdamW(model.parameters())
        record = {"upstream": "apc", "preset": "tiny", "corpus": "mix", "step": 4, "config": {"hidden": 2},
                  "total_steps": 4, "pretrain_s": pretrain_s}
        save_checkpoint(folder, model, optimizer, record)
        save_snapshot(folder / "steps" / "0000000", model, {**record, "step": 0})
        return folder

    def control(folder: Path, total_steps: int) -> str:
        pretrained(folder, 0.5, pretrain_s=81.0)
        snapshot = folder / "steps" / "0000000"
        record = json.loads((snapshot / "config.json").read_text())
        (snapshot / "config.json").write_text(json.dumps({**record, "total_steps": total_steps}))
        return checkpoint_sha256(snapshot)

    first = checkpoint_sha256(pretrained(tmp_path / "a", 0.5, pretrain_s=81.0))
    again = pretrained(tmp_path / "b", 0.5, pretrain_s=95.3)  # the same weights, trained again
    assert path_sha256(again) != path_sha256(tmp_path / "a")  # the folders differ (wall time)...
    assert checkpoint_sha256(again) == first  # ...what `load` reads does not
    assert checkpoint_sha256(pretrained(tmp_path / "c", 0.25, pretrain_s=81.0)) != first  # other weights
    config = json.loads((again / "config.json").read_text())
    (again / "config.json").write_text(json.dumps({**config, "config": {"hidden": 3}}))
    assert checkpoint_sha256(again) != first  # another architecture
    # the untrained step 0 of a longer run is the same model: one control, extracted and probed once
    assert control(tmp_path / "d", total_steps=400) == control(tmp_path / "e", total_steps=12800)
    hub = tmp_path / "hf"  # a folder of another kind is hashed whole
    hub.mkdir()
    (hub / "config.json").write_text('{"model_type": "wav2vec2"}')
    (hub / "model.safetensors").write_bytes(b"weights")
    (hub / "preprocessor_config.json").write_text('{"sampling_rate": 16000}')
    assert checkpoint_sha256(hub) == path_sha256(hub)
