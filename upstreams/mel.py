"""Raw log-Mel spectrogram (80 bins, 25 ms / 10 ms at 16 kHz): the baseline to beat."""

import torch

from benchmark.config import build_config
from benchmark.logmel import LogMel, MelConfig
from benchmark.upstream import Upstream


class MelUpstream(Upstream):
    """Log-Mel frames as features; one layer, no parameters.

    Args:
        config: the front-end parameters (the benchmark's defaults unless overridden).
    """

    def __init__(self, config: MelConfig):
        self.frontend = LogMel(config)
        self.sample_rate = config.sr_hz
        self.frame_rate = config.frame_rate
        self.feature_dim = config.n_mels
        self.num_layers = 1

    @torch.no_grad()
    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        feats = self.frontend(wave)  # (T, n_mels)
        return feats.unsqueeze(0) if layers else feats

    @torch.no_grad()
    def extract_batch(
        self, waves: torch.Tensor, lengths: torch.Tensor, layers: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.frontend(waves)  # (B, T, n_mels)
        frames = self.frontend.num_frames(lengths)
        # Zero the frames past each clip's end, as the padded loop path does.
        valid = torch.arange(feats.shape[1])[None, :] < frames[:, None]  # (B, T)
        feats = feats * valid[..., None]
        return (feats.unsqueeze(1) if layers else feats), frames


def load(**options) -> MelUpstream:
    """Build the log-Mel upstream.

    Args:
        **options: fields of `benchmark.logmel.MelConfig` (`sr_hz`, `n_mels`, `win_s`, `hop_s`,
            `f_min_hz`, `f_max_hz`).

    Returns:
        The upstream.
    """
    return MelUpstream(build_config(MelConfig, options, what="mel option"))
