"""Transformer pieces shared by Mockingjay, Audio ALBERT, TERA and wav2vec.

Post-LayerNorm encoder layers (as in BERT/Mockingjay) with fused attention
(`scaled_dot_product_attention`) and a key-padding mask, so a clip's valid frames come out the
same alone or inside a padded batch. Frames keep the 100 Hz log-Mel rate (no frame stacking),
so every hidden state aligns with the `mel` baseline.

Dropout on the CPU: torch draws one Mersenne-Twister number per element on one thread (about
7 ns each here), which made `bernoulli_` the largest cost after the matmuls in a training step
(attention dropout alone draws B x heads x T^2 numbers per layer, 96 M at the base size).
`dropout_mask` cuts four 16-bit lanes out of each 64-bit draw instead, so the drop probability
is rounded to a multiple of 1/65536 (0.1 becomes 0.100006) and the survivors are rescaled by
the exact 1 / (1 - p) of that rounding. The fused kernels refuse dropout on the CPU, so training
attention there is computed in explicit steps, the padding mask applied in place.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


_FUSED = {"attention": True}
LANES = 65536  # a 16-bit lane per dropout decision


def dropout_mask(shape: tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """A CPU dropout mask from the global torch generator, four decisions per 64-bit draw.

    Args:
        shape: the mask's shape.
        p: drop probability in [0, 1).

    Returns:
        `(shape)` bool, True where dropped (probability `round(p * 65536) / 65536`), and the
        scale `1 / (1 - that probability)` for the survivors.
    """
    n = math.prod(shape)
    draws = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # full 64 random bits
    lanes = draws.view(torch.int16)[:n].view(shape)  # uniform over [-32768, 32767]
    dropped = round(p * LANES)
    return lanes < dropped - LANES // 2, LANES / (LANES - dropped)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout`, with `dropout_mask`'s cheaper random numbers on the CPU."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    drop, scale = dropout_mask(tuple(x.shape), p)
    return x.masked_fill(drop, 0.0) * scale


class Dropout(nn.Dropout):
    """`nn.Dropout` through `dropout` (same state dict, same `p`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def dropout_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """Attention with dropout on the weights, for CPU training where no fused kernel takes dropout.

    Args:
        q, k, v: `(B, H, T, Dh)`.
        keep: `(B, T)` bool, True on valid frames (padded keys get no weight).
        p: attention dropout probability.

    Returns:
        `(B, H, T, Dh)`.
    """
    batch, heads, n_frames, head_dim = q.shape
    flat = [t.reshape(batch * heads, n_frames, head_dim) for t in (q, k, v)]  # 3 x (B * H, T, Dh)
    scores = torch.bmm(flat[0] * (1 / math.sqrt(head_dim)), flat[1].transpose(1, 2))  # (B * H, T, T)
    if not bool(keep.all()):  # crops are rarely padded; in place, since bmm's backward needs only q and k
        padded = ~keep.repeat_interleave(heads, 0)[:, None, :]  # (B * H, 1, T), broadcast over queries
        scores.masked_fill_(padded, float("-inf"))
    drop, scale = dropout_mask(tuple(scores.shape), p)
    weights = scores.softmax(-1).masked_fill(drop, 0.0)
    # rescale the (T, Dh) output, not the (T, T) weights: 1 / (1 - p) commutes with the matmul
    return (torch.bmm(weights, flat[2]) * scale).view(batch, heads, n_frames, head_dim)


@contextmanager
def plain_attention() -> Iterator[None]:
    """Within this block, attention is the textbook softmax(QK^T / sqrt(d)) V in explicit
    matmuls instead of `scaled_dot_product_attention`: the reference the fused path is tested
    and benchmarked against."""
    _FUSED["attention"] = False
    try:
        yield
    finally:
        _FUSED["attention"] = True


def valid_mask(frames: torch.Tensor, n_frames: int) -> torch.Tensor:
    """`(B, T)` bool, True on each clip's valid frames.

    Args:
        frames: `(B,)` valid frame counts.
        n_frames: padded length T.
    """
    return torch.arange(n_frames, device=frames.device)[None, :] < frames[:, None]


def sinusoidal_positions(n_frames: int, dim: int, device: torch.device) -> torch.Tensor:
    """`(T, dim)` sinusoidal position encodings (Vaswani et al.), as Mockingjay uses."""
    pos = torch.arange(n_frames, device=device, dtype=torch.float32)[:, None]  # (T, 1)
    rates = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    enc = torch.zeros(n_frames, dim, device=device)
    enc[:, 0::2] = torch.sin(pos * rates)
    enc[:, 1::2] = torch.cos(pos * rates[: dim // 2])
    return enc


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key-padding mask.

    Args:
        dim: model width.
        heads: attention heads (must divide `dim`).
        dropout: attention dropout (training only).
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        batch, n_frames, dim = x.shape
        qkv = self.qkv(x).view(batch, n_frames, 3, self.heads, dim // self.heads)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        key_mask = keep[:, None, None, :]  # (B, T) -> (B, 1, 1, T): every query ignores padded keys
        dropout_p = self.dropout if self.training else 0.0
        if _FUSED["attention"] and dropout_p > 0 and x.device.type == "cpu":
            attn = dropout_attention(q, k, v, keep, dropout_p)  # (B, H, T, Dh)
        elif _FUSED["attention"]:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)  # (B, H, T, Dh)
        else:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, T, T)
            weights = F.dropout(scores.masked_fill(~key_mask, float("-inf")).softmax(-1), dropout_p)
            attn = weights @ v  # (B, H, T, Dh)
        return self.out(attn.transpose(1, 2).reshape(batch, n_frames, dim))  # (B, T, D)


class EncoderLayer(nn.Module):
    """Post-LN transformer layer: `x = LN(x + attn(x)); x = LN(x + FFN(x))`.

    Args:
        dim: model width.
        heads: attention heads.
        ffn_dim: feed-forward width.
        dropout: dropout on residual branches and attention weights.
        eps: LayerNorm epsilon (s3prl's checkpoints use 1e-12).
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, eps: float = 1e-5):
        super().__init__()
        self.attn = SelfAttention(dim, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x, keep)))
        return self.norm2(x + self.drop(self.ffn(x)))


class Encoder(nn.Module):
    """A stack of post-LN layers; with `share_weights` one layer is applied `layers` times (ALBERT).

    Args:
        dim, heads, ffn_dim, dropout, eps: layer sizes and LayerNorm epsilon.
        layers: depth.
        share_weights: reuse a single layer's weights at every depth.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, layers: int, dropout: float, share_weights: bool = False,
                 eps: float = 1e-5):
        super().__init__()
        self.depth = layers
        n_distinct = 1 if share_weights else layers
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn_dim, dropout, eps) for _ in range(n_distinct))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's output, `depth` tensors `(B, T, D)`."""
        outs = []
        for i in range(self.depth):
            x = self.layers[i % len(self.layers)](x, keep)
            outs.append(x)
        return outs


class InputEmbedding(nn.Module):
    """Normalised log-Mel frames to model width: Linear, + sinusoidal positions, LayerNorm, dropout."""

    def __init__(self, n_mels: int, dim: int, dropout: float, eps: float = 1e-5):
        super().__init__()
        self.proj = nn.Linear(n_mels, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)  # (B, T, D)
        h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device)[None]
        return self.drop(self.norm(h))


class PredictionHead(nn.Module):
    """Mockingjay's reconstruction head: Linear-GELU-LayerNorm-Linear back to `n_mels`."""

    def __init__(self, dim: int, n_mels: int, eps: float = 1e-5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim, eps=eps), nn.Linear(dim, n_mels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
