"""Dropout on the CPU, and attention with dropout on the weights in cache-sized blocks.

Random bits: torch's CPU generator is a one-thread Mersenne Twister (about 7 ns per 64-bit
draw here), and attention dropout needs one decision per (query, key) pair: B x heads x T^2
per layer, 96 M at the base size. `dropout_mask` takes four 16-bit lanes from each 64-bit
word of numpy's SFC64 generator (about 2.5 ns a word), seeded by one draw from torch's global
generator, so `torch.manual_seed` still fixes every mask. The drop probability is rounded to a
multiple of 1/65536 (0.1 becomes 0.100006) and the survivors are rescaled by the exact
1 / (1 - p) of that rounding.

Attention: the fused kernels refuse dropout on the CPU, and the explicit path (scores,
softmax, masked weights, each a fresh B x heads x T x T tensor) spent most of its time
allocating and streaming those tensors through memory. `dropout_attention` is one autograd
function that walks the (head, query rows) blocks with two scratch buffers of `BLOCK_BYTES`
(they stay in the L3 cache) and keeps only the softmax probabilities and the bool mask for the
backward pass.
"""

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LANES = 65536  # a 16-bit lane per dropout decision
BLOCK_BYTES = 8 << 20  # one float32 score block; two such scratch buffers fit the L3 cache
_ZERO = torch.zeros(())


def dropout_mask(shape: tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """A CPU dropout mask, four decisions per 64-bit random word, seeded from torch's generator.

    Args:
        shape: the mask's shape.
        p: drop probability in [0, 1).

    Returns:
        `(shape)` bool, True where dropped (probability `round(p * 65536) / 65536`), and the
        scale `1 / (1 - that probability)` for the survivors.
    """
    n = math.prod(shape)
    seed = int(torch.empty((), dtype=torch.int64).random_())  # from torch's global generator
    words = np.random.Generator(np.random.SFC64(seed)).integers(0, 2**64, (n + 3) // 4, dtype=np.uint64)
    lanes = torch.from_numpy(words).view(torch.int16)[:n].view(shape)  # uniform over [-32768, 32767]
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


def blocks(n_heads: int, n_frames: int, block_bytes: int) -> Iterator[tuple[slice, slice]]:
    """(heads, query rows) slices whose float32 score blocks hold at most `block_bytes`
    (at least one row of one head): whole heads while a head fits, else rows of one head."""
    rows = max(1, block_bytes // (4 * n_frames))
    if rows >= n_frames:
        group = rows // n_frames
        for h in range(0, n_heads, group):
            yield slice(h, min(n_heads, h + group)), slice(0, n_frames)
    else:
        for h in range(n_heads):
            for r in range(0, n_frames, rows):
                yield slice(h, h + 1), slice(r, min(n_frames, r + rows))


def _view(buffer: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """A `shape` view at the start of a flat scratch buffer."""
    return buffer[: math.prod(shape)].view(shape)


class _BlockedDropoutAttention(torch.autograd.Function):
    """softmax(Q K^T / sqrt(d) + padding) with dropped weights, times V; see `dropout_attention`."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, padded: torch.Tensor | None,
                drop: torch.Tensor, scale: float, block_bytes: int) -> torch.Tensor:
        n_heads, n_frames, head_dim = q.shape
        q = q * (1 / math.sqrt(head_dim))  # (BH, T, Dh), scaled once instead of every score
        k, v = k.contiguous(), v.contiguous()
        probs = q.new_empty(n_heads, n_frames, n_frames)  # (BH, T, T), kept for the backward pass
        out = q.new_empty(n_heads, n_frames, head_dim)
        buffer = q.new_empty(block_bytes // 4 + n_frames)  # + one row: a block holds at least one
        for h, r in blocks(n_heads, n_frames, block_bytes):
            shape = (h.stop - h.start, r.stop - r.start, n_frames)
            scores = torch.bmm(q[h, r], k[h].transpose(1, 2), out=_view(buffer, shape))  # (h, r, T)
            if padded is not None:
                scores.masked_fill_(padded[h], float("-inf"))
            p = torch.ops.aten._softmax.out(scores, -1, False, out=probs[h, r])
            torch.bmm(torch.where(drop[h, r], _ZERO, p, out=scores), v[h], out=out[h, r])
        ctx.save_for_backward(q, k, v, probs, drop)
        ctx.scale, ctx.block_bytes = scale, block_bytes
        return out.mul_(scale)  # 1 / (1 - p) on the (T, Dh) output, not the (T, T) weights

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, probs, drop = ctx.saved_tensors
        n_heads, n_frames, head_dim = q.shape
        grad_out = grad_out.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        buffers = q.new_empty(2, ctx.block_bytes // 4 + n_frames)
        for h, r in blocks(n_heads, n_frames, ctx.block_bytes):
            shape = (h.stop - h.start, r.stop - r.start, n_frames)
            p, dropped = probs[h, r], drop[h, r]
            d_weights = torch.bmm(grad_out[h, r], v[h].transpose(1, 2), out=_view(buffers[0], shape))  # (h, r, T)
            weights = torch.where(dropped, _ZERO, p, out=_view(buffers[1], shape))
            dv[h].baddbmm_(weights.transpose(1, 2), grad_out[h, r])
            d_probs = d_weights.masked_fill_(dropped, 0.0)
            d_scores = torch.ops.aten._softmax_backward_data.out(d_probs, p, -1, p.dtype, grad_input=weights)
            torch.bmm(d_scores, k[h], out=dq[h, r])
            dk[h].baddbmm_(d_scores.transpose(1, 2), q[h, r])  # q is saved pre-scaled by 1 / sqrt(d)
        s = ctx.scale
        return dq.mul_(s / math.sqrt(head_dim)), dk.mul_(s), dv.mul_(s), None, None, None, None


def dropout_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor, p: float,
                      block_bytes: int = BLOCK_BYTES) -> torch.Tensor:
    """Attention with dropout on the weights, for CPU training where no fused kernel takes dropout.

    The same as `(softmax(QK^T / sqrt(d), padded keys -inf) * ~mask * scale) @ V` with the mask
    and scale of `dropout_mask((B * H, T, T), p)`, computed in blocks (see the module docstring).

    Args:
        q, k, v: `(B, H, T, Dh)` on the CPU.
        keep: `(B, T)` bool, True on valid frames (padded keys get no weight).
        p: attention dropout probability.
        block_bytes: size of one score block (tests make it small to exercise the row split).

    Returns:
        `(B, H, T, Dh)`.
    """
    batch, heads, n_frames, head_dim = q.shape
    flat = [t.reshape(batch * heads, n_frames, head_dim) for t in (q, k, v)]  # 3 x (B * H, T, Dh)
    padded = None if bool(keep.all()) else ~keep.repeat_interleave(heads, 0)[:, None, :]  # (B * H, 1, T)
    drop, scale = dropout_mask((batch * heads, n_frames, n_frames), p)
    out = _BlockedDropoutAttention.apply(*flat, padded, drop, scale, block_bytes)  # (B * H, T, Dh)
    return out.view(batch, heads, n_frames, head_dim)
