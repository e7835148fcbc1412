"""The work `melbench bench` times on melbench's side: pretraining steps of its models, plus the
FLOP counts behind model FLOPs utilisation. The other library's side is its module's
`REFERENCE` (`benchmark.upstream.Reference`; s3prl's classes in `upstreams/_s3prl.py`).

Both sides get the same batch of log-Mel frames, the same threads and (on the CPU) the same
float32 dtype. s3prl's step starts from frames already masked (its data loader masks them, off
the clock); melbench's step masks inside the timed forward, so the comparison leans towards
s3prl.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from benchmark.logmel import MelConfig
from benchmark.memory import glibc

# The frames both sides read: melbench's log-Mel front-end at its defaults.
N_MELS, FRAME_RATE = MelConfig().n_mels, MelConfig().frame_rate
# glibc's mallopt parameters and their defaults (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock time covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on a GPU when `enabled`; a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def fake_mel(batch: int, n_frames: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """`(batch, n_frames, N_MELS)` log-Mel-like frames (speed does not depend on the values)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n_frames, N_MELS, generator=generator) * 2 - 8).to(device)


def melbench_pretrain_step(spec: Any, config: Any, mel: torch.Tensor, bf16: bool,
                           compile_model: bool = False) -> Callable[[], None]:
    """One melbench pretraining step (masking, forward, L1 loss, backward, AdamW) as a closure.

    Args:
        spec: the upstream's `SSLSpec` (its model class).
        config: the model config.
        mel: `(B, T, n_mels)` batch on the target device.
        bf16: autocast to bf16 (GPU only).
        compile_model: wrap the model in `torch.compile`.
    """
    torch.manual_seed(0)
    model = spec.model_cls(config).to(mel.device).train()
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = torch.full((mel.shape[0],), mel.shape[1], device=mel.device)

    def step() -> None:
        with autocast(mel.device, bf16):
            loss, _ = step_model(mel, frames)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_flops(config: Any, batch: int, n_frames: int) -> float:
    """Model FLOPs of one reconstruction pretraining step (forward + backward = 3 x forward).

    Counts the matmuls: per layer the QKV, output and FFN projections (2 x tokens x weights)
    and the two attention products (2 x 2 x B x T^2 x hidden); plus the input projection and
    the prediction head. The backward pass costs two forwards, except at the input projection,
    where no gradient flows into the frames. Elementwise work is left out, as usual for MFU.
    """
    tokens = batch * n_frames
    h, f = config.hidden, config.ffn
    per_layer = 2 * tokens * (4 * h * h + 2 * h * f) + 4 * batch * n_frames * n_frames * h
    edges = 2 * tokens * (N_MELS * h + h * h + h * N_MELS)
    input_grad = 2 * tokens * N_MELS * h
    return 3.0 * (config.layers * per_layer + edges) - input_grad


def matmul_peak_flops(device: torch.device, n: int = 8192, iters: int = 20) -> float:
    """Measured bf16 matmul FLOP/s of the device: the physical ceiling MFU is taken against."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2.0 * n**3 * iters / (time.perf_counter() - start)


@contextmanager
def malloc_without_mmap() -> Iterator[bool]:
    """Within this block glibc's malloc serves large blocks from its heap and keeps freed memory
    (no mmap, no trimming), so a new large tensor reuses pages instead of faulting fresh ones in.

    Yields:
        Whether the setting took effect (False where the C library is not glibc).
    """
    libc = glibc()
    if libc is None:
        yield False
        return
    applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    try:
        yield applied
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
