"""Log-Mel front-end shared by the `mel` baseline and the Mel-input upstreams.

Normalisation (documented in README): power Mel spectrogram (HTK Mel scale, no filter-bank
normalisation), then natural log with a floor, `log(mel + 1e-6)`, so silence maps to about
-13.8 rather than -inf. No per-utterance mean/variance normalisation: each frame depends only
on the audio under its window, which keeps padded batches identical to single clips. Probes
standardise features with training-set statistics; pretrained upstreams store corpus
statistics in their checkpoints.

Framing: frames are centred on `i * hop` (zero padding of half a window at both ends), so a
clip of `n` samples gives `1 + n // hop` frames and frame `i` describes time `i * hop_s`.
"""

from dataclasses import dataclass

import torch

LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class MelConfig:
    """Log-Mel parameters; the defaults are 80 bins, 25 ms window, 10 ms hop at 16 kHz."""

    sr_hz: int = 16000
    n_mels: int = 80
    win_s: float = 0.025
    hop_s: float = 0.010
    f_min_hz: float = 0.0
    f_max_hz: float = 8000.0

    @property
    def win_samples(self) -> int:
        return round(self.win_s * self.sr_hz)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sr_hz)

    @property
    def frame_rate(self) -> float:
        return self.sr_hz / self.hop_samples


class LogMel(torch.nn.Module):
    """Waveforms to log-Mel frames.

    Args:
        config: the Mel parameters.
    """

    def __init__(self, config: MelConfig = MelConfig()):
        super().__init__()
        import torchaudio  # lazy: heavy import, only needed once a front-end is built

        self.config = config
        self.spec = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sr_hz,
            n_fft=config.win_samples,
            win_length=config.win_samples,
            hop_length=config.hop_samples,
            f_min=config.f_min_hz,
            f_max=config.f_max_hz,
            n_mels=config.n_mels,
            power=2.0,
            center=True,
            pad_mode="constant",  # zeros: a clip's frames equal its frames inside a zero-padded batch
        )

    def num_frames(self, n_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames produced for `n_samples` samples: `1 + n_samples // hop`."""
        return 1 + n_samples // self.config.hop_samples

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Compute log-Mel frames.

        Args:
            waves: `(n_samples,)` or `(batch, n_samples)` float32.

        Returns:
            `(n_frames, n_mels)` or `(batch, n_frames, n_mels)` float32.
        """
        mel = self.spec(waves.float())  # (..., n_mels, T)
        return torch.log(mel + LOG_FLOOR).transpose(-1, -2).contiguous()  # (..., T, n_mels)
