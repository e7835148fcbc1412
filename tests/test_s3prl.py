"""The `s3prl` adapter runs s3prl's own upstreams from local checkpoints, written here by s3prl's
own classes, and gets leaderboard rows."""

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.errors import MelbenchError
from benchmark.registry import load_upstream
from benchmark.runs import read_runs

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


@pytest.mark.parametrize("name", ["mockingjay", "tera", "audio_albert", "apc"])
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


@pytest.mark.parametrize("name", ["mockingjay", "tera", "audio_albert", "apc"])
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


@pytest.mark.parametrize("name", ["mockingjay", "tera", "audio_albert"])
def test_s3prl_reads_melbench_checkpoints_with_melbench_hidden_states(name: str, tmp_path: Path) -> None:
    from s3prl.upstream.mockingjay.builder import PretrainedTransformer

    from benchmark.logmel import LogMel, MelConfig
    from benchmark.pretrain import PretrainOptions, pretrain
    from _ssl_fixtures import write_corpus

    corpus = write_corpus(tmp_path / "audio", n_files=2, seconds=1.0)
    folder = pretrain(PretrainOptions(name, corpus=str(corpus), preset="tiny", steps=2, out=tmp_path / "ckpt",
                                      progress=False)).out  # real corpus statistics, folded on export
    out = tmp_path / "s3prl.ckpt"
    assert main(["to-s3prl", str(folder), str(out)]) == 0
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
    from benchmark.pretrain import PretrainOptions, pretrain
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
