"""The HEAR API both ways: melbench upstreams exported as a HEAR module (checked by the real
`hear-validator`), and any HEAR module run as a melbench upstream."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark import hear
from benchmark.check import check_upstream
from benchmark.cli import main
from benchmark.errors import MelbenchError
from benchmark.extract import features_of, pool_mean_std
from benchmark.pretraining.loop import PretrainOptions, pretrain
from benchmark.registry import load_upstream
from benchmark.runs import read_runs
from _ssl_fixtures import SSL_UPSTREAMS, write_corpus

REPO = Path(__file__).resolve().parent.parent
DEMO_TASKS = str(Path(__file__).parent / "demo_tasks.yaml")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-step tiny checkpoint of every SSL upstream."""
    root = tmp_path_factory.mktemp("hear")
    corpus = write_corpus(root / "audio", n_files=2, seconds=1.0)
    return {name: pretrain(PretrainOptions(name, corpus=str(corpus), preset="tiny", steps=2, out=root / name,
                                           progress=False)).out for name in SSL_UPSTREAMS}


def _validator() -> str:
    if importlib.util.find_spec("hearvalidator") is None:
        pytest.skip("hearvalidator is not installed (pip install -e '.[hear]')")
    return str(Path(sys.executable).parent / "hear-validator")


@pytest.mark.parametrize("name", ["mel", *SSL_UPSTREAMS])
def test_hear_validator_passes_on_every_exported_upstream(name: str, checkpoints: dict[str, Path]) -> None:
    cmd = [_validator(), "benchmark.hear", "--device", "cpu"]
    if name != "mel":
        cmd += ["--model", str(checkpoints[name])]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Looks good!" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("name", ["mel", "tera", "apc"])
def test_exported_embeddings_are_melbench_features_at_exact_times(name: str, checkpoints: dict[str, Path]) -> None:
    path = "" if name == "mel" else str(checkpoints[name])
    model = hear.load_model(path)
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.uniform(-0.5, 0.5, (3, 16000 * 61)).astype(np.float32))  # 61 s: past max_input_s
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    own = features_of(load_upstream(name, {} if name == "mel" else {"checkpoint": path}), audio[1].numpy())
    assert emb.shape == (3, *own.shape) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[1], torch.from_numpy(own), atol=1e-5, rtol=1e-5)
    assert ts.shape == emb.shape[:2] and ts[0, -1].item() == (own.shape[0] - 1) * 10.0  # no drift after 6100 frames
    short = audio[:2, :32000]
    scene = hear.get_scene_embeddings(short, model)
    np.testing.assert_allclose(scene[0].numpy(), pool_mean_std(hear.get_timestamp_embeddings(short, model)[0][0].numpy()),
                               atol=1e-5)
    assert scene.shape == (2, model.scene_embedding_size)


def test_load_model_names_what_it_cannot_load(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="expected a melbench checkpoint folder, an upstream name"):
        hear.load_model(str(tmp_path / "nothing-here"))


HEAR_MODULE = '''
"""A HEAR module written for the test: band energies of 25 ms frames every 20 ms."""
import torch

class Model(torch.nn.Module):
    sample_rate = 16000
    timestamp_embedding_size = 8
    scene_embedding_size = 8

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))

def load_model(model_file_path=""):
    return Model(float(open(model_file_path).read()) if model_file_path else 1.0)

def get_timestamp_embeddings(audio, model):
    hop, win = 320, 400
    padded = torch.nn.functional.pad(audio, (win // 2, win // 2))
    frames = padded.unfold(1, win, hop)  # (B, T, win)
    spec = torch.fft.rfft(frames * torch.hann_window(win), dim=-1).abs() ** 2  # (B, T, 201)
    bands = torch.stack([b.sum(-1) for b in spec[..., 1:].chunk(8, dim=-1)], -1)  # (B, T, 8)
    emb = model.scale * torch.log(bands + 1e-6)
    ts = torch.arange(emb.shape[1]) * 20.0
    return emb.float(), ts.expand(audio.shape[0], -1)

def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(1)
'''


def test_a_hear_module_runs_as_an_upstream_and_gets_leaderboard_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "band_hear.py").write_text(textwrap.dedent(HEAR_MODULE))
    (tmp_path / "scale.txt").write_text("2.0")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    upstream = load_upstream("hear:band_hear", {"weights": str(tmp_path / "scale.txt")})
    assert (upstream.frame_rate, upstream.feature_dim, upstream.sample_rate) == (50.0, 8, 16000)
    one_s = upstream.extract(torch.zeros(16000) + 0.1)
    assert one_s.shape == (51, 8)
    out = tmp_path / "results"
    assert main(["run", "--upstreams", "mel,hear:band_hear", "--set", f"weights={tmp_path / 'scale.txt'}",
                 "--tasks-file", DEMO_TASKS, "--quiet", "--out", str(out)]) == 0
    rows = [r for r in read_runs(out / "runs.jsonl") if r["upstream"] == "hear:band_hear"]
    assert len(rows) == 6 and all(r["metrics"]["accuracy"]["value"] > 1 / 3 for r in rows)  # 3 classes
    assert rows[0]["upstream_options"]["weights"] == str(tmp_path / "scale.txt")
    assert "hear:band_hear" in (out / "leaderboard.md").read_text()


def test_the_round_trip_through_hear_gives_the_mel_features() -> None:
    wave = np.random.default_rng(1).uniform(-0.3, 0.3, 24000).astype(np.float32)
    through_hear = features_of(load_upstream("hear:benchmark.hear"), wave)
    np.testing.assert_allclose(through_hear, features_of(load_upstream("mel"), wave), atol=1e-6)


def test_hear_adapter_errors_name_the_module() -> None:
    with pytest.raises(Exception, match="HEAR module 'no_such_module_xyz' cannot be imported"):
        load_upstream("hear:no_such_module_xyz")
    with pytest.raises(Exception, match="lacks load_model"):
        load_upstream("hear:json")



def test_name_argument_form_and_run_set_are_checked(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(Exception, match="'mel' takes no NAME:ARGUMENT form"):
        load_upstream("mel:anything")
    args = ["run", "--upstreams", "mel,apc,tera", "--set", "layer=1", "--tasks-file", DEMO_TASKS, "--quiet"]
    assert main(args) == 2
    assert "--set applies to one upstream besides mel; got apc, tera" in capsys.readouterr().err


OFFSET_MODULE = '''
"""A HEAR module whose frames start at 25 ms (the centre of its first 50 ms window), every 10 ms;
each embedding is its own timestamp, so alignment can be read off the features."""
import torch

class Model(torch.nn.Module):
    sample_rate = 16000
    timestamp_embedding_size = 1
    scene_embedding_size = 1

def load_model(model_file_path=""):
    if model_file_path:
        open(model_file_path).close()  # a weights file that must exist
    return Model()

def get_timestamp_embeddings(audio, model):
    n = max(1, (audio.shape[1] - 800) // 160 + 1)
    ts = 25.0 + 10.0 * torch.arange(n, dtype=torch.float32)
    return ts[None, :, None].expand(audio.shape[0], -1, -1).clone(), ts.expand(audio.shape[0], -1)

def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(1)
'''


def test_hear_timestamps_are_honoured_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "offset_hear.py").write_text(textwrap.dedent(OFFSET_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    upstream = load_upstream("hear:offset_hear")
    assert upstream.frame_rate == pytest.approx(100.0)
    feats = upstream.extract(torch.zeros(16000))[:, 0]  # (T,): the time each melbench frame was given
    grid_ms = 10.0 * torch.arange(len(feats))
    module_ms = 25.0 + 10.0 * torch.arange((16000 - 800) // 160 + 1)
    nearest = module_ms[(grid_ms[:, None] - module_ms[None, :]).abs().argmin(1)]
    torch.testing.assert_close(feats, nearest)  # frame i holds the module's frame nearest i * 10 ms
    assert len(feats) == 101 and feats[4] == 35.0  # 40 ms: the module's 35 ms frame, not its fifth (65 ms)
    assert not [r.detail for r in check_upstream(upstream) if not r.passed]
    # a weights file that is not there: one line naming the module and the file, exit code 2
    with pytest.raises(MelbenchError, match=r"HEAR module offset_hear: load_model\('.*nope.bin'\) failed "
                                            r"\(FileNotFoundError"):
        load_upstream("hear:offset_hear", {"weights": str(tmp_path / "nope.bin")})
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    assert main(["extract", "hear:offset_hear", str(wav), "--set", f"weights={tmp_path / 'nope.bin'}"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
