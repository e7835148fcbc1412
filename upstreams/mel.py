"""Raw log-Mel spectrogram (80 bins, 25 ms / 10 ms at 16 kHz): the baseline to beat."""

from dataclasses import dataclass

import torch

from benchmark.config import build_config
from benchmark.logmel import LogMel, MelConfig
from benchmark.upstream import Upstream


@dataclass(frozen=True)
class MelOptions:
    """Options of `load`; the defaults are the benchmark's front-end."""

    sr_hz: int = 16000
    n_mels: int = 80
    win_s: float = 0.025
    hop_s: float = 0.010


class MelUpstream(Upstream):
    """Log-Mel frames as features; one layer, no parameters."""

    def __init__(self, options: MelOptions):
        self.options = options
        self.frontend = LogMel(
            MelConfig(sr_hz=options.sr_hz, n_mels=options.n_mels, win_s=options.win_s, hop_s=options.hop_s)
        )
        self.sample_rate = options.sr_hz
        self.frame_rate = self.frontend.config.frame_rate
        self.feature_dim = options.n_mels
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
        **options: fields of `MelOptions` (`sr_hz`, `n_mels`, `win_s`, `hop_s`).

    Returns:
        The upstream.
    """
    return MelUpstream(build_config(MelOptions, options, what="mel option"))
