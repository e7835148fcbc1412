"""The upstream contract: what every file in `upstreams/` provides.

A module `upstreams/<name>.py` defines `load(**options) -> Upstream`. The returned object
declares its facts and extracts frame features; the harness does the rest (reading and
resampling audio, batching, caching, pooling). See `upstreams/_template.py`.

Module-level names the harness reads (all but `load` optional; `benchmark.contract.CONTRACT`
is the table `melbench check` verifies, shown in the README):
    load(**options): the upstream object.
    prepare(plan, progress, given): `load` options for `melbench run`, for upstreams without a SPEC (`benchmark.run_inputs`).
    ARGUMENT: the option a `NAME:VALUE` name fills (`benchmark.registry`).
    CODE_OPTIONS: options naming modules whose code the features depend on (`benchmark.fingerprints`).
    FILE_OPTIONS: options naming files the features depend on, hashed into the cache key (`benchmark.cache`).
    CHECK_OPTIONS: options the contract tests load it with; REQUIRES: packages it needs.
    SPEC: an `upstreams._ssl.SSLSpec` for upstreams melbench pretrains (`benchmark.pretraining.loop`;
        `melbench run` pretrains the run's checkpoint where missing).
    to_s3prl(checkpoint): the checkpoint in s3prl's format (`melbench to-s3prl`).
    REFERENCE: a `Reference`, another library's build of a melbench upstream's architecture
        that `melbench bench` times beside melbench's (`benchmark.perf`).

Facts:
    sample_rate (int): the rate `extract` expects, in Hz; the harness resamples to it.
    frame_rate (float): output frames per second.
    feature_dim (int): size of each output frame.
    num_layers (int, optional, default 1): hidden states available with `layers=True`.
    max_input_s (float, optional): the longest clip `extract` takes at once. The harness
        (`extract_chunked`) cuts longer clips into chunks of at most that length, cut on frame
        boundaries, and joins their frames; frames next to a cut see context from one side only.
    provenance (dict, optional): JSON facts about how the model was made (pretraining corpus,
        hours, steps, wall time ...); `melbench run` copies it into every result record.

Methods:
    extract(wave, layers=False): `(n_samples,)` float32 tensor in; `(n_frames, feature_dim)`
        float32 tensor out, with `n_frames` within one frame of `duration * frame_rate`.
        With `layers=True`: `(num_layers, n_frames, feature_dim)`.
    extract_batch(waves, lengths, layers=False) (optional): `(batch, max_samples)` zero-padded
        waves and their `(batch,)` lengths in; `(batch, max_frames, feature_dim)` (or
        `(batch, num_layers, max_frames, feature_dim)`) and `(batch,)` frame counts out. It must
        agree with `extract` on every clip's valid frames.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Reference:
    """Another library's implementation of a melbench upstream's architecture (a module's
    `REFERENCE`), which `melbench bench` times side by side with melbench's own.

    Attributes:
        library: its name, as the bench's record and table show it.
        upstream: the melbench upstream whose model config both sides are built from.
        available: whether the library is installed.
        pretrain_step: `(config, mel, bf16) -> step`: one closure per pretraining step on the
            `(B, T, n_mels)` batch `mel`, masking, loss, backward and optimiser step included.
        extract: `(config, device) -> run`: `run(mel)` returns every hidden state of `mel`.
    """

    library: str
    upstream: str
    available: Callable[[], bool]
    pretrain_step: Callable[[Any, torch.Tensor, bool], Callable[[], None]]
    extract: Callable[[Any, torch.device], Callable[[torch.Tensor], list[torch.Tensor]]]


class Upstream:
    """Optional base class: sensible defaults for `num_layers` and `extract_batch`."""

    sample_rate: int
    frame_rate: float
    feature_dim: int
    num_layers: int = 1
    provenance: dict | None = None

    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        """Frame features of one mono clip (see the module docstring)."""
        raise NotImplementedError

    def extract_batch(
        self, waves: torch.Tensor, lengths: torch.Tensor, layers: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features of a zero-padded batch (see the module docstring)."""
        return loop_extract_batch(self, waves, lengths, layers)


def loop_extract_batch(
    upstream: object, waves: torch.Tensor, lengths: torch.Tensor, layers: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batched path for upstreams without one: `extract` on each clip, then pad.

    Args:
        upstream: any object with `extract`.
        waves: `(batch, max_samples)` float32, zero-padded.
        lengths: `(batch,)` valid samples per clip.
        layers: return every hidden layer.

    Returns:
        Features `(batch, max_frames, dim)` (or `(batch, layers, max_frames, dim)`), zero-padded,
        and `(batch,)` frame counts.
    """
    outs = [upstream.extract(w[: int(n)], layers=layers) for w, n in zip(waves, lengths)]
    frames = torch.tensor([o.shape[-2] for o in outs], dtype=torch.long)
    max_frames = int(frames.max()) if len(outs) else 0
    padded = [torch.nn.functional.pad(o, (0, 0, 0, max_frames - o.shape[-2])) for o in outs]
    return torch.stack(padded), frames


def batch_extract(
    upstream: object, waves: torch.Tensor, lengths: torch.Tensor, layers: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the upstream's `extract_batch` if it has one, else `loop_extract_batch`.

    Args:
        upstream: a loaded upstream.
        waves: `(batch, max_samples)` float32, zero-padded.
        lengths: `(batch,)` valid samples per clip.
        layers: return every hidden layer.

    Returns:
        As `loop_extract_batch`.
    """
    fn = getattr(upstream, "extract_batch", None)
    if fn is None:
        return loop_extract_batch(upstream, waves, lengths, layers)
    return fn(waves, lengths, layers=layers)


def pad_batch(waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D clips into one batch.

    Args:
        waves: `(n_samples_i,)` tensors.

    Returns:
        `(batch, max_samples)` padded waves and `(batch,)` lengths.
    """
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), int(lengths.max()) if waves else 0)
    for i, w in enumerate(waves):
        out[i, : len(w)] = w
    return out, lengths


def extract_chunked(upstream: object, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
    """`upstream.extract`, in chunks of at most `upstream.max_input_s` when it declares one.

    Chunks are a whole number of hops long (`sample_rate / frame_rate` samples), so chunk k's
    frames are centred where the unchunked frames would be. A chunk of n samples yields
    `n / hop + 1` frames, its last centred on the next chunk's first, so that last frame is
    dropped from every chunk but the final one, and the frame count equals the unchunked one.

    Args:
        upstream: a loaded upstream.
        wave: `(n_samples,)` float32.
        layers: return every hidden layer.

    Returns:
        As `extract`.
    """
    max_s = getattr(upstream, "max_input_s", None)
    hop = upstream.sample_rate / upstream.frame_rate
    if not max_s or len(wave) <= max_s * upstream.sample_rate or hop != int(hop):
        return upstream.extract(wave, layers=layers)
    chunk = int(max_s * upstream.sample_rate // hop * hop)
    outs = []
    for start in range(0, len(wave), chunk):
        out = upstream.extract(wave[start : start + chunk], layers=layers)
        last = start + chunk >= len(wave)
        outs.append(out if last else out[..., :-1, :])
    return torch.cat(outs, dim=-2)
