"""The fast paths (fused and blocked attention, the dropout kernels, oneDNN linear) equal the plain ones."""

import pytest
import torch

from benchmark.perf.models import fake_mel
from benchmark.registry import load_module
from _ssl_fixtures import TRANSFORMER_UPSTREAMS
from upstreams._dropout import BLOCK_BYTES, blocks, dropout, dropout_attention, dropout_mask
from upstreams._transformer import Linear, plain_attention

FAMILY = TRANSFORMER_UPSTREAMS  # the upstreams built on upstreams._transformer, from the registry


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


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_mask_rate_and_scale(p: float) -> None:
    torch.manual_seed(0)
    drop, scale = dropout_mask((1000, 1001), p)  # an odd count: the last 64-bit draw is cut
    assert drop.shape == (1000, 1001) and drop.dtype == torch.bool
    p_used = round(p * 65536) / 65536
    assert abs(float(drop.float().mean()) - p_used) < 0.003  # ~6 standard errors at 10^6 draws
    assert scale == pytest.approx(1 / (1 - p_used), abs=0)
    kept = dropout(torch.ones(1000, 1000), p, training=True)
    assert float(kept.mean()) == pytest.approx(1.0, abs=0.01)  # survivors rescaled: expectation kept
    assert set(kept.unique().tolist()) == {0.0, torch.tensor(scale).item()}  # float32 scale
    torch.testing.assert_close(dropout(kept, p, training=False), kept, atol=0, rtol=0)


# one block for all heads; two heads per block (the last one alone); 7 query rows of one head
@pytest.mark.parametrize("block_bytes", [BLOCK_BYTES, 4 * 50 * 50 * 2, 4 * 50 * 7])
def test_dropout_attention_equals_textbook_with_the_same_mask(block_bytes: int) -> None:
    """Forward and gradients of the blocked CPU training path against softmax(QK^T / sqrt(d)) V
    with the same dropped weights, on a padded batch."""
    assert len(list(blocks(6, 50, block_bytes))) == {BLOCK_BYTES: 1, 4 * 50 * 50 * 2: 3, 4 * 50 * 7: 6 * 8}[block_bytes]
    q, k, v = (torch.randn(2, 3, 50, 8, generator=torch.Generator().manual_seed(i), requires_grad=True) for i in range(3))
    keep = torch.arange(50)[None, :] < torch.tensor([50, 31])[:, None]  # (B, T)
    torch.manual_seed(7)
    fast = dropout_attention(q, k, v, keep, 0.2, block_bytes)
    fast_grads = torch.autograd.grad(fast[keep[:, None, :, None].expand_as(fast)].square().sum(), (q, k, v))
    torch.manual_seed(7)
    drop, scale = dropout_mask((6, 50, 50), 0.2)
    scores = (q @ k.transpose(-1, -2)) / 8**0.5  # (B, H, T, T)
    weights = scores.masked_fill(~keep[:, None, None, :], float("-inf")).softmax(-1)
    textbook = (weights * ~drop.view(2, 3, 50, 50) * scale) @ v
    textbook_grads = torch.autograd.grad(textbook[keep[:, None, :, None].expand_as(textbook)].square().sum(), (q, k, v))
    torch.testing.assert_close(fast, textbook, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast_grads, textbook_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert float(drop.float().mean()) > 0.1  # the comparison did drop weights


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_onednn_linear_equals_f_linear() -> None:
    layer = Linear(48, 80)
    x = torch.randn(3, 7, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = layer(x)  # (3, 7, 80) through oneDNN
        with plain_attention():
            plain = layer(x)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)
    assert layer(x).grad_fn is not None  # with gradients recorded it stays on F.linear
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16  # under autocast F.linear runs, in bf16
