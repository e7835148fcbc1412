"""Transformer pieces shared by Mockingjay, Audio ALBERT, TERA and wav2vec.

Post-LayerNorm encoder layers (as in BERT/Mockingjay) with fused attention
(`scaled_dot_product_attention`) and a key-padding mask, so a clip's valid frames come out the
same alone or inside a padded batch. Frames keep the 100 Hz log-Mel rate (no frame stacking),
so every hidden state aligns with the `mel` baseline.

Dropout on the CPU goes through `upstreams._dropout` (cheaper random bits, and blocked
attention with dropout, which the fused kernels refuse on the CPU). Without gradients on the
CPU (feature extraction), the linear layers run oneDNN's float32 GEMM, which was 10-20% faster
than torch's default (MKL) on this project's 2-core AMD machines, at the same precision.
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.errors import MelbenchError
from upstreams._dropout import Dropout, dropout_attention

_FUSED = {"attention": True, "linear": torch.backends.mkldnn.is_available()}


@contextmanager
def plain_attention() -> Iterator[None]:
    """Within this block, attention is the textbook softmax(QK^T / sqrt(d)) V in explicit
    matmuls instead of `scaled_dot_product_attention`, and linear layers run `F.linear`: the
    reference the fast paths are tested and benchmarked against."""
    saved = dict(_FUSED)
    _FUSED.update(attention=False, linear=False)
    try:
        yield
    finally:
        _FUSED.update(saved)


class Linear(nn.Linear):
    """`nn.Linear` (same parameters and state dict) through oneDNN's float32 GEMM on the CPU
    when no gradient is recorded and no autocast is on; `F.linear` otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = _FUSED["linear"] and x.device.type == "cpu" and x.dtype == torch.float32
        recording = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if not fast or recording or torch.is_autocast_enabled("cpu"):  # autocast casts F.linear's inputs to bf16
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, x.shape[-1])  # (N, in): oneDNN's linear takes 2-D input
        out = torch.ops.mkldnn._linear_pointwise(flat, self.weight, self.bias, "none", [], "")  # (N, out)
        return out.view(*x.shape[:-1], out.shape[-1])


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
        self.qkv = Linear(dim, 3 * dim)
        self.out = Linear(dim, dim)

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
        self.ffn = nn.Sequential(Linear(dim, ffn_dim), nn.GELU(), Linear(ffn_dim, dim))
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


class ConvPositions(nn.Module):
    """wav2vec 2.0's relative positional embedding: a grouped convolution over time, then GELU.

    Args:
        dim: model width.
        kernel: frames the convolution spans (odd, so the output keeps the input's length).
        groups: channel groups (must divide `dim`).
    """

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0 or groups < 1 or dim % groups:
            raise MelbenchError(f"conv_pos_kernel={kernel}, conv_pos_groups={groups}: expected a positive odd kernel "
                                f"and positive groups dividing the width {dim}")
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)

    def forward(self, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # padding frames are zeroed so that they reach no valid frame's window: a clip's output is
        # the same alone (the convolution's own zero padding) or inside a padded batch
        h = (h * keep[..., None]).transpose(1, 2)  # (B, D, T)
        return F.gelu(self.conv(h)).transpose(1, 2)  # (B, T, D)


class InputEmbedding(nn.Module):
    """Normalised log-Mel frames to model width: Linear, + positions, LayerNorm, dropout.

    Args:
        n_mels: input bins.
        dim: model width.
        dropout: dropout after the LayerNorm.
        eps: the LayerNorm's epsilon.
        positions: "sinusoidal" (Mockingjay: absolute encodings added to the projection) or "conv"
            (wav2vec 2.0: `ConvPositions` of the projection added to it).
        conv_kernel: frames `ConvPositions` spans.
        conv_groups: its channel groups.
    """

    def __init__(self, n_mels: int, dim: int, dropout: float, eps: float, positions: str, conv_kernel: int,
                 conv_groups: int):
        super().__init__()
        self.proj = Linear(n_mels, dim)
        self.conv_positions = ConvPositions(dim, conv_kernel, conv_groups) if positions == "conv" else None
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """`(B, T, n_mels)` frames and their `(B, T)` validity to `(B, T, dim)`."""
        h = self.proj(x)  # (B, T, D)
        if self.conv_positions is None:
            h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device)[None]
        else:
            h = h + self.conv_positions(h, keep)
        return self.drop(self.norm(h))


class PredictionHead(nn.Module):
    """Mockingjay's reconstruction head: Linear-GELU-LayerNorm-Linear back to `n_mels`."""

    def __init__(self, dim: int, n_mels: int, eps: float = 1e-5):
        super().__init__()
        self.net = nn.Sequential(Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim, eps=eps), Linear(dim, n_mels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
