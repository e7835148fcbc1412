"""Copy-me example of an upstream: copy to `upstreams/<name>.py` and fill in the model.

The harness finds the copy by its file name (this file is skipped because it starts with `_`).
Nothing else needs editing. Run `melbench check <name>` to validate it.

The contract (full text in `benchmark/upstream.py`):
  * `load(**options)` returns the upstream object. Parse options with `build_config` so
    unknown keys and wrong types give a clear error. Load checkpoints with safetensors or
    `torch.load(..., weights_only=True)`, never plain pickle.
  * The object declares `sample_rate` (int, Hz), `frame_rate` (float, frames per second),
    `feature_dim` (int) and optionally `num_layers` (int). The harness resamples audio to
    `sample_rate` before calling `extract`.
  * `extract(wave, layers=False)`: `(n_samples,)` float32 tensor in, `(n_frames, feature_dim)`
    float32 tensor out, `n_frames` within one frame of `duration_s * frame_rate`; with
    `layers=True`, `(num_layers, n_frames, feature_dim)`. Silence and clips shorter than one
    frame must not fail or produce NaN.
  * `extract_batch(waves, lengths, layers=False)` is optional (the `Upstream` base class loops
    over `extract`); a real batched path must give the same valid frames as `extract`.
"""

from dataclasses import dataclass

import torch

from benchmark.config import build_config
from benchmark.logmel import LogMel, MelConfig
from benchmark.upstream import Upstream


@dataclass(frozen=True)
class TemplateOptions:
    """Every option `load` accepts, typed, with its default."""

    hidden_dim: int = 32
    seed: int = 0


class TemplateUpstream(Upstream):
    """A random linear projection of log-Mel frames: replace with a real model."""

    def __init__(self, options: TemplateOptions):
        self.frontend = LogMel(MelConfig())
        generator = torch.Generator().manual_seed(options.seed)
        self.proj = torch.randn(self.frontend.config.n_mels, options.hidden_dim, generator=generator)
        self.sample_rate = self.frontend.config.sr_hz
        self.frame_rate = self.frontend.config.frame_rate
        self.feature_dim = options.hidden_dim
        self.num_layers = 2  # the projection and its tanh

    @torch.no_grad()
    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        projected = self.frontend(wave) @ self.proj  # (T, n_mels) @ (n_mels, hidden_dim)
        hidden = torch.tanh(projected)  # (T, hidden_dim)
        return torch.stack([projected, hidden]) if layers else hidden  # (num_layers, T, hidden_dim)


def load(**options) -> TemplateUpstream:
    """Build the upstream.

    Args:
        **options: fields of `TemplateOptions`.

    Returns:
        The upstream.
    """
    return TemplateUpstream(build_config(TemplateOptions, options, what="template option"))
