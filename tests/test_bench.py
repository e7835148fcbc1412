"""The fast paths equal the plain ones; the FLOP count behind MFU; `melbench bench` end to end."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.bench_models import fake_mel, step_flops
from benchmark.cli import main
from benchmark.registry import load_module
from upstreams._transformer import plain_attention

FAMILY = ["mockingjay", "audio_albert", "tera", "wav2vec"]  # the upstreams built on upstreams._transformer


def _model(name: str, **overrides: object) -> torch.nn.Module:
    spec = load_module(name).SPEC
    torch.manual_seed(0)
    return spec.model_cls(spec.config("tiny", overrides))


@pytest.mark.parametrize("name", FAMILY)
def test_fused_attention_equals_plain_batched_and_padded(name: str) -> None:
    model = _model(name).eval()
    mel = fake_mel(3, 120, torch.device("cpu"))
    frames = torch.tensor([120, 77, 5])
    with torch.no_grad():
        fused = model.hidden_states(mel, frames)
        with plain_attention():
            plain = model.hidden_states(mel, frames)
        for f, p in zip(fused, plain):  # (B, T, D) each
            for b, n in enumerate(frames):
                torch.testing.assert_close(f[b, :n], p[b, :n], atol=1e-5, rtol=1e-5)
        for b, n in enumerate(frames):  # each clip alone, unpadded, gives its frames in the batch
            alone = model.hidden_states(mel[b : b + 1, :n], frames[b : b + 1])
            for f, a in zip(fused, alone):
                torch.testing.assert_close(f[b, :n], a[0], atol=1e-5, rtol=1e-5)


def test_fused_and_plain_training_steps_give_the_same_gradients() -> None:
    mel = fake_mel(2, 90, torch.device("cpu"))
    frames = torch.tensor([90, 60])
    grads = []
    for plain in (False, True):
        model = _model("mockingjay", dropout=0.0).train()
        torch.manual_seed(1)  # the same masked spans on both paths
        if plain:
            with plain_attention():
                loss, _ = model(mel, frames)
        else:
            loss, _ = model(mel, frames)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_step_flops_matches_torch_flop_counter() -> None:
    spec = load_module("mockingjay").SPEC
    config = dataclasses.replace(spec.config("tiny"), dropout=0.0)
    model = spec.model_cls(config).train()
    mel = fake_mel(2, 150, torch.device("cpu"))
    # torch's counter sees the attention products only as explicit matmuls (the plain path)
    with FlopCounterMode(display=False) as counter, plain_attention():
        loss, _ = model(mel, torch.tensor([150, 150]))
        loss.backward()
    assert counter.get_total_flops() == step_flops(config, 2, 150)


def test_bench_quick_writes_the_ratios(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    record = json.loads((out / "bench.json").read_text())
    printed = capsys.readouterr().out
    assert "ratio vs s3prl" in printed and "probes of one task" in printed
    assert record["probe_cache_ratio"] > 1  # the cache beats re-extraction on every epoch
    for key in ("pretrain_ratio_vs_s3prl", "extract_ratio_vs_s3prl"):
        if record["s3prl_installed"]:
            assert record[key] > 0
        else:
            assert record[key] is None
    pre = record["pretrain"]["melbench"]
    assert pre["min_s"] <= pre["median_s"] <= pre["max_s"] and pre["repeats"] == 2
    assert set(record["extract"]["upstreams"]) >= {"mel", "mockingjay", "apc", "wav2vec"}
    assert [p["clip_s"] for p in record["scaling"]["by_length"]] == [1.0, 2.0]
