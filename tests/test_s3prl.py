"""The `s3prl` adapter runs s3prl's own upstreams from local checkpoints, written here by s3prl's
own classes, and gets leaderboard rows."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.cli import main
from benchmark.errors import MelbenchError
from benchmark.registry import load_upstream
from benchmark.runs import read_runs
from upstreams._s3prl import S3PRL_FAMILIES, TRANSFORMER_FAMILIES
from upstreams._s3prl_frontends import kaldi_audio_config, online_audio_config

pytest.importorskip("s3prl", reason="the [s3prl] extra is not installed")

DEMO_TASKS = str(Path(__file__).parent / "demo_tasks.yaml")


def _apc_checkpoint(folder: Path) -> Path:
    from s3prl.upstream.apc.apc import APC

    paras = {"hidden_size": 16, "num_layers": 3, "dropout": 0.0, "residual": True}
    torch.manual_seed(0)
    audio = {"feat_type": "fbank", "feat_dim": 80, "frame_length": 25, "frame_shift": 10, "dither": 0.0}
    path = folder / "apc.ckpt"
    torch.save({"config": {"data": {"audio": audio}, "model": {"paras": paras}}, "model": APC(80, **paras).state_dict()},
               path)
    return path


@pytest.mark.parametrize("name", S3PRL_FAMILIES)
def test_adapter_frames_are_s3prl_own_hidden_states(name: str, tmp_path: Path) -> None:
    import importlib

    from upstreams.s3prl import random_checkpoint

    ckpt = _apc_checkpoint(tmp_path) if name == "apc" else random_checkpoint(name, tmp_path)
    upstream = load_upstream(f"s3prl:{name}", {"checkpoint": str(ckpt)})
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32))
    ours = upstream.extract(wave, layers=True)  # (L, 101, D)
    expert = importlib.import_module(f"s3prl.upstream.{name}.expert").UpstreamExpert(str(ckpt)).eval()
    with torch.no_grad():
        theirs = torch.stack([h[0] for h in expert([wave])["hidden_states"]])  # (L, 98, D)
    assert ours.shape == (theirs.shape[0], 101, theirs.shape[2])
    torch.testing.assert_close(ours[:, 1:99], theirs, atol=1e-4, rtol=1e-4)  # shifted one frame later
    torch.testing.assert_close(ours[:, 0], theirs[:, 0])  # edges repeated
    torch.testing.assert_close(ours[:, -1], theirs[:, -1])


def test_run_with_an_s3prl_checkpoint_gets_leaderboard_rows(tmp_path: Path) -> None:
    from upstreams.s3prl import random_checkpoint

    ckpt = random_checkpoint("tera", tmp_path)
    out = tmp_path / "results"
    assert main(["run", "--upstreams", "mel,s3prl:tera", "--set", f"checkpoint={ckpt}", "--tasks-file", DEMO_TASKS,
                 "--no-layer-sweep", "--quiet", "--out", str(out)]) == 0
    rows = [r for r in read_runs(out / "runs.jsonl") if r["upstream"] == "s3prl:tera"]
    assert len(rows) == 6 and all(r["checkpoint_sha256"] for r in rows)
    assert "s3prl:tera" in (out / "leaderboard.md").read_text()


def test_adapter_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(MelbenchError, match="give a local checkpoint file with --set checkpoint=PATH"):
        load_upstream("s3prl:mockingjay")
    bad = tmp_path / "bad.ckpt"
    torch.save({"nothing": 1}, bad)
    with pytest.raises(MelbenchError, match="not an s3prl mockingjay checkpoint"):
        load_upstream("s3prl:mockingjay", {"checkpoint": str(bad)})
    with pytest.raises(MelbenchError, match="no such s3prl upstream family"):
        load_upstream("s3prl:no_such_family", {"checkpoint": str(bad)})


@pytest.mark.parametrize("name", S3PRL_FAMILIES)
def test_melbench_reads_s3prl_checkpoints_with_s3prl_hidden_states(name: str, tmp_path: Path) -> None:
    import importlib

    from benchmark.check import check_upstream
    from upstreams.s3prl import random_checkpoint

    # random weights from s3prl's own classes
    ckpt = _apc_checkpoint(tmp_path) if name == "apc" else random_checkpoint(name, tmp_path)
    ours = load_upstream(name, {"checkpoint": str(ckpt)})
    wave = torch.from_numpy(np.random.default_rng(1).uniform(-0.3, 0.3, 20000).astype(np.float32))
    feats = ours.extract(wave, layers=True)  # (L, 126, D): melbench's model code, s3prl's front-end
    expert = importlib.import_module(f"s3prl.upstream.{name}.expert").UpstreamExpert(str(ckpt)).eval()
    with torch.no_grad():
        theirs = torch.stack([h[0] for h in expert([wave])["hidden_states"]])  # (L, 123, D)
    assert feats.shape == (theirs.shape[0], 1 + 20000 // 160, theirs.shape[2])
    torch.testing.assert_close(feats[:, 1 : 1 + theirs.shape[1]], theirs, atol=1e-4, rtol=1e-4)
    assert not [r.detail for r in check_upstream(ours) if not r.passed]  # batched == single, frames vs duration


@pytest.mark.parametrize("name", TRANSFORMER_FAMILIES)
def test_s3prl_reads_melbench_checkpoints_with_melbench_hidden_states(name: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    import importlib

    from s3prl.upstream.mockingjay.builder import PretrainedTransformer

    from benchmark.logmel import LogMel, MelConfig
    from benchmark.pretraining.loop import PretrainOptions, pretrain
    from _ssl_fixtures import write_corpus

    corpus = write_corpus(tmp_path / "audio", n_files=2, seconds=1.0)
    folder = pretrain(PretrainOptions(name, corpus=str(corpus), preset="tiny", steps=2, out=tmp_path / "ckpt",
                                      progress=False)).out  # real corpus statistics, folded on export
    out = tmp_path / "s3prl.ckpt"
    assert main(["to-s3prl", str(folder), str(out)]) == 0
    assert f"note: s3prl's hub entry {name}_local cannot load it" in capsys.readouterr().out
    hub_entry = getattr(importlib.import_module(f"s3prl.upstream.{name}.hubconf"), f"{name}_local")
    with pytest.raises((AttributeError, KeyError, TypeError)):  # the limitation the note states
        hub_entry(str(out))([torch.zeros(16000)])
    options = {"ckpt_file": str(out), "load_pretrain": "True", "no_grad": "True", "dropout": "default",
               "spec_aug": "False", "spec_aug_prev": "True", "output_hidden_states": "True", "permute_input": "False",
               "select_layer": -1}
    s3prl_model = PretrainedTransformer(options, inp_dim=-1).eval()
    wave = torch.from_numpy(np.random.default_rng(2).uniform(-0.3, 0.3, 16000).astype(np.float32))
    mel = LogMel(MelConfig())(wave)[None]  # (1, T, 80): melbench's log-Mel frames are s3prl's input
    with torch.no_grad():
        _, theirs = s3prl_model(mel)  # (L, 1, T, D)
    ours = load_upstream(name, {"checkpoint": str(folder)}).extract(wave, layers=True)  # (L, T, D)
    torch.testing.assert_close(ours, theirs[:, 0], atol=1e-4, rtol=1e-4)


def test_to_s3prl_refuses_what_has_no_s3prl_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["to-s3prl", str(tmp_path), str(tmp_path / "x.ckpt")]) == 2
    assert "not a melbench checkpoint record" in capsys.readouterr().err


def test_s3prl_apc_reads_melbench_apc_with_melbench_outputs(tmp_path: Path) -> None:
    from s3prl.upstream.apc.apc import APC

    from benchmark.logmel import LogMel, MelConfig
    from benchmark.pretraining.loop import PretrainOptions, pretrain
    from _ssl_fixtures import write_corpus

    corpus = write_corpus(tmp_path / "audio", n_files=2, seconds=1.0)
    folder = pretrain(PretrainOptions("apc", corpus=str(corpus), preset="tiny", steps=2, out=tmp_path / "ckpt",
                                      progress=False)).out
    out = tmp_path / "apc.ckpt"
    assert main(["to-s3prl", str(folder), str(out)]) == 0
    states = torch.load(out, weights_only=True)  # a melbench file holds tensors and plain data only
    s3prl_apc = APC(80, **states["config"]["model"]["paras"])
    s3prl_apc.load_state_dict(states["model"])  # s3prl's class takes the weights as they are
    wave = torch.from_numpy(np.random.default_rng(3).uniform(-0.3, 0.3, 16000).astype(np.float32))
    mel = LogMel(MelConfig())(wave)[None]  # (1, T, 80)
    with torch.no_grad():
        _, theirs = s3prl_apc.eval()(mel, torch.tensor([mel.shape[1]]), testing=True)  # last GRU layer (1, T, H)
    ours = load_upstream("apc", {"checkpoint": str(folder)}).extract(wave, layers=True)  # projection + layers
    torch.testing.assert_close(ours[-1], theirs[0], atol=1e-4, rtol=1e-4)


class Payload:
    """A class no s3prl checkpoint holds: unpickling it would run a user's file's code."""

    def __reduce__(self):  # noqa: ANN204 - what a malicious pickle does
        return (print, ("this must never run",))


def test_s3prl_files_are_read_without_unpickling_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import argparse

    from upstreams._s3prl import load_s3prl_file

    good = tmp_path / "good.ckpt"
    torch.save({"Upstream_Config": argparse.Namespace(a=1), "w": torch.ones(2)}, good)
    assert load_s3prl_file(good)["Upstream_Config"].a == 1  # s3prl's Namespace is allowed
    bad = tmp_path / "bad.ckpt"
    torch.save({"Transformer": Payload()}, bad)
    with pytest.raises(MelbenchError, match=r"bad.ckpt: refused: it holds print, which melbench does not unpickle"):
        load_s3prl_file(bad)
    assert "this must never run" not in capsys.readouterr().out


def test_broken_s3prl_checkpoints_get_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from upstreams.s3prl import random_checkpoint

    missing = tmp_path / "states-1000000.ckpt"
    with pytest.raises(MelbenchError, match="states-1000000.ckpt: no such checkpoint"):
        load_upstream("mockingjay", {"checkpoint": str(missing)})
    ckpt = random_checkpoint("mockingjay", tmp_path)
    states = torch.load(ckpt, weights_only=True)
    states["Upstream_Config"]["transformer"]["intermediate_size"] = 48  # the weights say 64
    torch.save(states, tmp_path / "shape.ckpt")
    with pytest.raises(MelbenchError, match=r"weight encoder.layers.0.ffn.0.weight has shape \(64, 32\), but the "
                                            r"checkpoint's config gives \(48, 32\)"):
        load_upstream("mockingjay", {"checkpoint": str(tmp_path / "shape.ckpt")})
    states = torch.load(ckpt, weights_only=True)
    del states["Transformer"]["encoder.layer.1.output.dense.weight"]
    torch.save(states, tmp_path / "lacks.ckpt")
    with pytest.raises(MelbenchError, match="lacks 'encoder.layer.1.output.dense.weight', which its config calls for"):
        load_upstream("mockingjay", {"checkpoint": str(tmp_path / "lacks.ckpt")})
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    for bad in (missing, tmp_path / "shape.ckpt", tmp_path / "lacks.ckpt"):  # each one line, exit code 2
        capsys.readouterr()
        assert main(["extract", "mockingjay", str(wav), "--set", f"checkpoint={bad}", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("melbench: error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _kaldi_delta9() -> dict:
    return {**kaldi_audio_config(), "delta": {"order": 1, "win_length": 9}}  # deltas over 9 frames, not 5


FRONT_ENDS = {  # s3prl's front-end kinds: Kaldi (with a non-default delta window) and on-the-fly features
    "kaldi-fbank-delta9": _kaldi_delta9,
    "online-logmel-cmvn-level": online_audio_config,  # s3prl's published logMelBase-* front-end
    "online-linear": lambda: online_audio_config("linear", cmvn=False, target_level=-20),
    "online-mfcc-delta2": lambda: online_audio_config("mfcc", delta=2),
}


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_s3prl_checkpoints_of_every_front_end_give_s3prl_hidden_states(front_end: str, tmp_path: Path) -> None:
    import importlib

    from benchmark.check import check_upstream
    from upstreams.s3prl import random_checkpoint

    # s3prl's own classes and config; 120-frame sequence_length, so the 3 s clip (301 frames) is cut in 3
    ckpt = random_checkpoint("mockingjay", tmp_path, audio=FRONT_ENDS[front_end](), sequence_length=120)
    wave = torch.from_numpy(np.random.default_rng(3).uniform(-0.3, 0.3, 48000).astype(np.float32))
    ours = load_upstream("mockingjay", {"checkpoint": str(ckpt)})
    feats = ours.extract(wave, layers=True)  # (L, 301, D) on melbench's grid
    expert = importlib.import_module("s3prl.upstream.mockingjay.expert").UpstreamExpert(str(ckpt)).eval()
    with torch.no_grad():
        theirs = torch.stack([h[0] for h in expert([wave])["hidden_states"]])  # (L, T', D)
    assert feats.shape[1] == 1 + 48000 // 160
    if front_end.startswith("kaldi"):  # whole windows only: s3prl frame i is melbench frame i + 1
        torch.testing.assert_close(feats[:, 1 : 1 + theirs.shape[1]], theirs, atol=1e-4, rtol=1e-4)
    else:  # a centred STFT: the same frames, none shifted or dropped
        assert theirs.shape[1] == feats.shape[1]
        torch.testing.assert_close(feats, theirs, atol=1e-4, rtol=1e-4)
    # the s3prl: adapter (s3prl's own code) puts its frames on the same grid
    adapter = load_upstream("s3prl:mockingjay", {"checkpoint": str(ckpt)}).extract(wave, layers=True)
    torch.testing.assert_close(adapter, feats, atol=1e-4, rtol=1e-4)
    assert not [r.detail for r in check_upstream(ours) if not r.passed]
