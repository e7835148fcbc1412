"""`melbench pretrain`: losses fall, resume is exact (also after SIGKILL), torchrun with gloo works."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _ssl_fixtures import SSL_UPSTREAMS, write_corpus
from benchmark.audio import find_audio_files
from benchmark.errors import MelbenchError
from benchmark.pretraining.frames import load_mel_corpus, sample_batch
from benchmark.pretraining.checkpoints import CheckpointPlan
from benchmark.pretraining.loop import PretrainOptions, ensure_pretrained, learning_rate, pretrain
from benchmark.registry import load_module, load_upstream

REPO = Path(__file__).resolve().parent.parent

# Fraction of the step-0 validation loss each upstream must get below in 100 tiny steps (measured
# 2026-12-02: apc 0.56, tera 0.73, bestrq 0.75, mockingjay and audio_albert 0.83, wav2vec 0.83).
MAX_RATIO = {"mockingjay": 0.85, "audio_albert": 0.85, "tera": 0.85, "apc": 0.75, "wav2vec": 0.9, "bestrq": 0.9}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "audio")


@pytest.fixture(scope="module")
def clips_corpus(tmp_path_factory):
    """32 clips: the held-out split then holds several, so held-out crops have distractors from
    other clips (the 8-clip corpus holds out one)."""
    return write_corpus(tmp_path_factory.mktemp("clips") / "audio", n_files=32)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MELBENCH_HOME", str(tmp_path / "home"))


def _held_out_stats(name: str, checkpoint: Path | None, corpus: Path | None = None) -> dict[str, float]:
    """The loss statistics of a tiny model on fixed held-out crops of `corpus` (a random tiny
    model on synthetic frames without a checkpoint), averaged over four batches."""
    spec = load_module(name).SPEC
    if checkpoint is None:
        model, mels = spec.model_cls(spec.config("tiny")), [torch.randn(300, 80) for _ in range(2)]
    else:
        model = load_upstream(name, {"checkpoint": str(checkpoint)}).model
        mels = load_mel_corpus(find_audio_files(corpus), 80, seed=0, progress=False).val
    model.eval()
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    with torch.no_grad():
        runs = [model(*sample_batch(mels, 4, 100, generator), 0)[1] for _ in range(4)]
    return {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_validation_loss_falls(name, clips_corpus, tmp_path):
    opts = PretrainOptions(name, corpus=str(clips_corpus), preset="tiny", steps=100, val_every=50, out=tmp_path / "ck", progress=False)
    result = pretrain(opts)
    first, last = result.val_loss[0][1], result.val_loss[-1][1]
    assert last < MAX_RATIO[name] * first, result.val_loss
    record = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert record["step"] == 100 and record["upstream"] == name and len(record["val_loss"]) == 3


# A contrastive loss can fall by collapsing to uninformative logits; learning is beating chance.
CONTRASTIVE = [name for name in SSL_UPSTREAMS if "chance" in _held_out_stats(name, None)]


@pytest.mark.parametrize("name", CONTRASTIVE)
def test_contrastive_loss_beats_chance(name, clips_corpus, tmp_path):
    opts = PretrainOptions(name, corpus=str(clips_corpus), preset="tiny", steps=200, out=tmp_path / "ck", progress=False)
    pretrain(opts)
    stats = _held_out_stats(name, tmp_path / "ck", clips_corpus)
    assert stats["contrastive"] < stats["chance"] - 0.05, stats


@pytest.mark.parametrize("name", SSL_UPSTREAMS)
def test_stop_and_resume_equals_uninterrupted(name, corpus, tmp_path):
    common = dict(corpus=str(corpus), preset="tiny", steps=12, checkpoint_every=5, val_every=6, progress=False)
    pretrain(PretrainOptions(name, out=tmp_path / "full", **common))
    pretrain(PretrainOptions(name, out=tmp_path / "split", stop_after=7, **common))
    assert json.loads((tmp_path / "split" / "config.json").read_text())["step"] == 7
    pretrain(PretrainOptions(name, out=tmp_path / "split", resume=True, **common))
    assert_same_weights(tmp_path / "full", tmp_path / "split")
    full = json.loads((tmp_path / "full" / "config.json").read_text())["val_loss"]
    split = json.loads((tmp_path / "split" / "config.json").read_text())["val_loss"]
    assert full == split


def test_sigkill_then_resume_equals_uninterrupted(corpus, tmp_path):
    args = ["mockingjay", "--corpus", str(corpus), "--preset", "tiny", "--steps", "16", "--checkpoint-every", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "benchmark", "pretrain", *args]
    subprocess.run([*cmd, "--out", str(tmp_path / "full")], check=True, env=env, cwd=REPO, capture_output=True)
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed")], env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    config = tmp_path / "killed" / "config.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (config.exists() and json.loads(config.read_text())["step"] >= 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(config.read_text())["step"]
    assert 4 <= killed_at < 16, "the run finished before it could be killed"
    subprocess.run([*cmd, "--out", str(tmp_path / "killed"), "--resume"], check=True, env=env, cwd=REPO, capture_output=True)
    assert_same_weights(tmp_path / "full", tmp_path / "killed")


def test_torchrun_two_processes_gloo(corpus, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", "29531", "-m", "benchmark", "pretrain", "apc",
           "--corpus", str(corpus), "--preset", "tiny", "--steps", "6", "--val-every", "3", "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "config.json").read_text())
    assert record["step"] == 6 and len(record["val_loss"]) == 3
    assert "s of audio/s" in done.stdout


def test_existing_run_needs_resume(corpus, tmp_path):
    opts = PretrainOptions("apc", corpus=str(corpus), preset="tiny", steps=1, out=tmp_path / "ck", progress=False)
    pretrain(opts)
    with pytest.raises(MelbenchError, match="--resume"):
        pretrain(opts)


def test_unknown_corpus_and_preset(tmp_path):
    with pytest.raises(MelbenchError, match="corpus"):
        pretrain(PretrainOptions("apc", corpus="nonsense", preset="tiny", steps=1, progress=False))
    with pytest.raises(MelbenchError, match="preset"):
        pretrain(PretrainOptions("apc", corpus=str(tmp_path), preset="huge", steps=1, progress=False))


def test_learning_rate_schedule():
    lrs = [learning_rate(s, 1.0, 10, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(1 / 90)


def test_corpus_logmel_is_cached_on_disk(corpus, tmp_path, monkeypatch):
    from benchmark.logmel import MelConfig
    from benchmark.pretraining import frames

    files = [Path(shutil.copy(f, tmp_path)) for f in sorted(corpus.glob("*.wav"))]  # edited below
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    files.append(tmp_path / "bad.wav")
    config = MelConfig()
    computed, skipped = frames.corpus_logmel(files, config, progress=False)
    assert len(computed) == len(files) - 1 and len(skipped) == 1 and "bad.wav" in skipped[0]

    def must_not_compute(*args):
        raise AssertionError("the second read should come from the cache")

    monkeypatch.setattr(frames, "_compute_logmel", must_not_compute)
    cached, skipped_again = frames.corpus_logmel(files, config, progress=False)
    assert skipped_again == skipped and len(cached) == len(computed)
    for a, b in zip(computed, cached):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # another front-end or an edited file is a different entry
    with pytest.raises(AssertionError, match="from the cache"):
        frames.corpus_logmel(files, MelConfig(n_mels=40), progress=False)
    shutil.copy(files[1], files[0])
    with pytest.raises(AssertionError, match="from the cache"):
        frames.corpus_logmel(files, config, progress=False)


@pytest.mark.parametrize("killed", [False, True], ids=["finished", "killed"])
def test_a_default_checkpoint_of_an_older_recipe_is_set_aside_and_pretrained_again(quick_home, tmp_path, monkeypatch,
                                                                                  capsys, killed):
    home = tmp_path / "home"
    home.mkdir()
    (home / "data").symlink_to(quick_home / "data")  # the quick corpus, built once per session
    monkeypatch.setenv("MELBENCH_HOME", str(home))
    plan = CheckpointPlan(corpus="mix", preset="tiny", steps=2, quick=True, snapshots=(0.0,))
    spec = load_module("mockingjay").SPEC
    old = ensure_pretrained("mockingjay", plan, progress=False)["checkpoint"]
    assert load_upstream("mockingjay", {"checkpoint": old}).model.embed.conv_positions is None
    if killed:  # as if killed after its first step: resumed, it would go on with the old recipe
        config = Path(old) / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "step": 1}))
    # the preset changes (as `small` did, to convolutional positions): the old checkpoint is not the default any more
    monkeypatch.setitem(spec.presets, "tiny", replace(spec.presets["tiny"], positions="conv", conv_pos_kernel=9,
                                                      conv_pos_groups=4))
    new = ensure_pretrained("mockingjay", plan, progress=False)["checkpoint"]
    assert new == old and "pretrained with another tiny recipe (now: conv_pos_groups=4, conv_pos_kernel=9, " \
                          "positions=conv); kept as mix-quick-tiny.previous-1" in capsys.readouterr().out
    assert load_upstream("mockingjay", {"checkpoint": new}).model.embed.conv_positions is not None
    kept = Path(old).with_name("mix-quick-tiny.previous-1")
    assert load_upstream("mockingjay", {"checkpoint": str(kept)}).model.embed.conv_positions is None  # still loads
    ensure_pretrained("mockingjay", plan, progress=False)  # current now: used as it is
    assert "another" not in capsys.readouterr().out and not kept.with_name("mix-quick-tiny.previous-2").exists()
