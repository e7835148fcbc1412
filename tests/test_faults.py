"""Faults: bad files in a pretraining corpus, NaN losses, tampered checkpoints and cache entries,
a full disk during a cache write, SIGKILLs during extraction, manifest paths outside the data."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from _ssl_fixtures import write_corpus
from benchmark.atomic import atomic_write
from benchmark.cache import FeatureCache, cache_key
from benchmark.data.byo import load_manifest
from benchmark.errors import MelbenchError
from benchmark.extract import extract_files
from benchmark.pretraining.loop import PretrainOptions, pretrain
from benchmark.registry import load_upstream
from tests.conftest import sine

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MELBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _tiny(corpus: Path, out: Path, **kw) -> PretrainOptions:
    return PretrainOptions("mockingjay", corpus=str(corpus), preset="tiny", out=out, progress=False, **kw)


def test_pretraining_skips_bad_files_and_records_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = write_corpus(tmp_path / "audio", n_files=4, seconds=1.0)
    (corpus / "empty.wav").write_bytes(b"")
    (corpus / "page.mp3").write_text("<html></html>")
    nan = sine(440, 1.0, 16000)
    nan[7] = np.nan
    sf.write(corpus / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(corpus / "silent.wav", np.zeros(16000, np.float32), 16000)  # valid: stays in, stays finite
    pretrain(_tiny(corpus, tmp_path / "ck", steps=2))
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "ck" / "config.json").read_text())
    skipped = record["skipped_files"]
    assert [line.split(":")[0] for line in skipped] == [str(corpus / n) for n in ("empty.wav", "nan.wav", "page.mp3")]
    assert "contains NaN or Inf samples" in skipped[1]
    assert all(f"  skipped: {line}" in printed for line in skipped)
    assert np.isfinite(record["val_loss"][-1][1])


def test_nan_loss_stops_with_the_step_and_the_last_good_checkpoint(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "audio", n_files=4, seconds=1.0)
    out = tmp_path / "ck"
    # lr ramps up over 5 warm-up steps: the weights hold for 2 steps, then overflow
    with pytest.raises(MelbenchError, match=r"validation loss became nan at step 3; stopped, the last good "
                       rf"checkpoint is {out} at step 2; try a lower --set lr="):
        pretrain(_tiny(corpus, out, steps=30, checkpoint_every=1, val_every=100, overrides={"lr": 1e4}))
    assert json.loads((out / "config.json").read_text())["step"] == 2
    upstream = load_upstream("mockingjay", {"checkpoint": str(out)})
    assert torch.isfinite(upstream.extract(torch.from_numpy(sine(440, 1.0, 16000)))).all()
    with pytest.raises(MelbenchError, match="became nan at step 1; stopped, no checkpoint was saved before it"):
        pretrain(_tiny(corpus, tmp_path / "ck2", steps=30, checkpoint_every=1, overrides={"lr": 1e8}))
    assert not (tmp_path / "ck2" / "model.safetensors").exists()


def test_tampered_checkpoints_are_refused(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "audio", n_files=4, seconds=1.0)
    out = tmp_path / "ck"
    pretrain(_tiny(corpus, out, steps=1))
    model = out / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-3] ^= 0xFF  # one weight changed; the header still parses
    model.write_bytes(bytes(data))
    with pytest.raises(MelbenchError, match="do not match the sha256 written with them .* refusing to load it"):
        load_upstream("mockingjay", {"checkpoint": str(out)})
    torch.save({"weights": torch.zeros(3)}, model)  # a pickle under the expected name is never unpickled
    with pytest.raises(MelbenchError, match="not a readable safetensors file .* never loads pickles"):
        load_upstream("mockingjay", {"checkpoint": str(out)})
    (out / "config.json").write_text("{not json")
    with pytest.raises(MelbenchError, match="config.json: not valid JSON"):
        load_upstream("mockingjay", {"checkpoint": str(out)})
    (out / "train_state.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(MelbenchError, match="train_state.safetensors: not a melbench training state"):
        pretrain(_tiny(corpus, out, steps=2, resume=True))


def test_a_nan_cache_entry_is_recomputed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, sine(440, 1.0, 16000), 16000)
    first = extract_files("mel", {}, [path], progress=False).items[0]
    good = np.load(first.feature_path)
    np.save(first.feature_path, np.full_like(good, np.nan))
    again = extract_files("mel", {}, [path], progress=False).items[0]
    assert not again.cached and "holds NaN/Inf; recomputing" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(again.feature_path), good)


def _limit_file_size() -> None:
    # A file-size limit makes writes fail with EFBIG, as a full disk fails them with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_full_disk_during_a_cache_write_leaves_the_cache_valid(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    sf.write(folder / "short.wav", sine(440, 0.1, 16000), 16000)  # 11 frames: 3.6 kB of features
    sf.write(folder / "long.wav", sine(440, 1.0, 16000), 16000)  # 101 frames: 32 kB, over the limit
    cmd = [sys.executable, "-m", "benchmark", "extract", "mel", str(folder), "--quiet"]
    env = {**os.environ, "MELBENCH_HOME": str(home)}
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, preexec_fn=_limit_file_size)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "cannot write features (" in err and "the cache is unchanged" in err
    left = sorted(p.name for p in (home / "features").rglob("*") if p.is_file())
    entries = [name for name in left if name != "key.json"]  # the short clip's, if it went first
    assert "key.json" in left and len(entries) <= 1 and all(n.endswith(".npy") for n in entries), left  # no temp files
    report = extract_files("mel", {}, sorted(folder.iterdir()), progress=False)
    assert not report.skipped and all(np.isfinite(np.load(i.feature_path)).all() for i in report.items)


def test_sigkill_during_extraction_then_resume_equals_uninterrupted(tmp_path: Path, home: Path) -> None:
    n_clips = 64
    folder = tmp_path / "audio"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_clips):
        sf.write(folder / f"clip{i:02d}.wav", sine(float(rng.uniform(100, 800)), 4.0, 16000), 16000)
    options = {"random_init": True, "preset": "small"}
    cmd = [sys.executable, "-m", "benchmark", "extract", "mockingjay", str(folder), "--quiet",
           "--set", "random_init=true", "--set", "preset=small"]
    env = {**os.environ, "MELBENCH_HOME": str(home), "OMP_NUM_THREADS": "1"}
    cache_dir = FeatureCache(cache_key("mockingjay", options, layers=False, pool=False)).dir
    stored = lambda: len(list(cache_dir.rglob("*.npy")))  # noqa: E731
    # a seeded schedule: kill once at least `threshold` entries are stored, `delay_s` later
    schedule = np.random.default_rng(1)
    stored_at_kill = []
    for threshold, delay_s in zip(schedule.integers(1, n_clips // 2, 3), schedule.uniform(0.0, 0.3, 3)):
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and stored() < threshold:
            time.sleep(0.01)
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stored_at_kill.append(stored())
    assert min(stored_at_kill) < n_clips, f"every run finished before its kill: {stored_at_kill}"
    resumed = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    fresh = extract_files("mockingjay", options, sorted(folder.iterdir()), cache_root=tmp_path / "fresh", progress=False)
    assert len(fresh.items) == n_clips and not any(i.cached for i in fresh.items)
    for item in fresh.items:
        resumed_path = cache_dir / item.feature_path.relative_to(item.feature_path.parents[1])  # <xx>/<item>.npy
        np.testing.assert_allclose(np.load(resumed_path), np.load(item.feature_path), atol=1e-5)


def test_manifest_paths_outside_the_data_never_make_melbench_write_there(tmp_path: Path, home: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    rows = ["path,label,split"]
    for i, split in enumerate(["train", "train", "valid", "test"]):
        sf.write(outside / f"{i}.wav", sine(300 + 100 * i, 0.5, 16000), 16000)
        rows.append(f"../outside/{i}.wav,{'xy'[i % 2]},{split}")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    dataset, problems = load_manifest(data / "manifest.csv")
    assert not problems
    before = set(tmp_path.rglob("*"))
    report = extract_files("mel", {}, [item.path for item in dataset.items], progress=False)
    written = set(tmp_path.rglob("*")) - before
    assert len(report.items) == 4 and written
    outside_home = sorted(p for p in written if p != home and home not in p.parents)
    assert not outside_home, outside_home


def test_a_one_hour_file_is_extracted_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "hour.wav"
    rate_hz = 16000
    with sf.SoundFile(path, "w", rate_hz, 1, subtype="PCM_16") as f:
        for minute in range(60):
            f.write(sine(110.0 * (1 + minute % 12), 60.0, rate_hz))
    # a transformer over 360k frames at once would need ~0.5 TB of attention scores
    report = extract_files("mockingjay", {"random_init": True, "preset": "tiny"}, [path], progress=False)
    assert not report.skipped
    feats = np.load(report.items[0].feature_path, mmap_mode="r")
    assert feats.shape[0] == 3600 * 100 + 1 and np.isfinite(feats).all()


def test_atomic_writes_get_the_mode_of_a_plain_write(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "atomic.md", "w") as f:
        f.write("# report\n")
    (tmp_path / "plain.md").write_text("# report\n")
    assert (tmp_path / "atomic.md").stat().st_mode == (tmp_path / "plain.md").stat().st_mode


def test_run_skips_bad_audio_records_it_and_keeps_the_good_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from benchmark.cli import main
    from benchmark.runs import read_runs

    audio = tmp_path / "audio"
    audio.mkdir()
    rows = []
    for i in range(24):
        label, split = "low" if i % 2 else "high", ["train", "train", "valid", "test"][i % 4]
        sf.write(audio / f"{i}.wav", sine((200 if i % 2 else 2000) + 10 * i, 0.5, 16000), 16000)
        rows.append(f"audio/{i}.wav,{label},{split}")
    nan = sine(300, 0.5, 16000)
    nan[9] = np.nan
    sf.write(audio / "nan.wav", nan, 16000, subtype="FLOAT")
    task = "tasks:\n  mine:\n    dataset: {}\n    level: clip\n    labels: multiclass\n    metrics: [accuracy]\n"
    args = ["run", "--upstreams", "mel", "--fractions", "1", "--seeds", "1", "--no-layer-sweep", "--quiet"]
    results = {}
    for name, extra in (("clean", []), ("with_bad", ["audio/nan.wav,low,train"])):
        (tmp_path / f"{name}.csv").write_text("path,label,split\n" + "\n".join(rows + extra) + "\n")
        (tmp_path / f"{name}.yaml").write_text(task.format(tmp_path / f"{name}.csv"))
        assert main([*args, "--tasks-file", str(tmp_path / f"{name}.yaml"), "--out", str(tmp_path / name)]) == 0
        results[name] = read_runs(tmp_path / name / "runs.jsonl")[0]
    assert f"skipped item: {audio / 'nan.wav'}: contains NaN or Inf samples" in capsys.readouterr().out
    assert results["with_bad"]["skipped_items"] == [str(audio / "nan.wav")]
    assert results["clean"]["skipped_items"] == []
    assert results["with_bad"]["metrics"] == results["clean"]["metrics"]
