"""The masked-reconstruction model behind Mockingjay, Audio ALBERT and TERA.

One model, three recipes: Mockingjay alters time spans; Audio ALBERT is Mockingjay with one
layer's weights shared across depth; TERA adds frequency-band and magnitude alterations. The
loss is L1 between the reconstruction and the clean (normalised) frames on altered positions.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from upstreams._masking import frequency_alter, magnitude_alter, time_alter
from upstreams._ssl import TrainFields, init_mel_stats
from upstreams._transformer import Encoder, InputEmbedding, PredictionHead, valid_mask


@dataclass(frozen=True)
class EncoderFields(TrainFields):
    """The encoder fields `MelTransformer` reads (defaults: Mockingjay base, 3 x 768, 12 heads,
    FFN 3072); each model's config adds its objective's fields."""

    hidden: int = 768
    heads: int = 12
    ffn: int = 3072
    layers: int = 3
    dropout: float = 0.1
    share_weights: bool = False  # one layer's weights across depth (Audio ALBERT)
    layer_norm_eps: float = 1e-5  # s3prl's checkpoints use 1e-12
    # how frames learn where they are: "sinusoidal" absolute encodings added to the input
    # projection (Mockingjay), or "conv", a grouped convolution of it over conv_pos_kernel frames
    # (wav2vec 2.0's relative embedding; docs/ssl_upstreams.md, "Positions")
    positions: Literal["sinusoidal", "conv"] = "sinusoidal"
    conv_pos_kernel: int = 65
    conv_pos_groups: int = 16


@dataclass(frozen=True)
class ReconstructionConfig(EncoderFields):
    """Alteration fields of the masked-reconstruction family, on top of the encoder's."""

    mask_proportion: float = 0.15
    mask_span: int = 7
    freq_mask_max: float = 0.0  # TERA: up to 20% of the bins
    noise_prob: float = 0.0  # TERA magnitude alteration
    noise_std: float = 0.2


def sizes(hidden: int, heads: int, layers: int, **train) -> dict:
    """Config fields of one model size (FFN = 4 x hidden, as in the papers)."""
    return {"hidden": hidden, "heads": heads, "ffn": 4 * hidden, "layers": layers, **train}


# Training sizes shared by the family's presets: tiny runs in seconds, small on 2 CPU cores.
TINY_TRAIN = {"batch_size": 4, "crop_s": 1.0, "warmup_steps": 5, "lr": 1e-3, "dropout": 0.0}
SMALL_TRAIN = {"batch_size": 8, "crop_s": 3.0, "warmup_steps": 200, "lr": 5e-4}


class MelTransformer(nn.Module):
    """Corpus-normalised log-Mel frames -> input embedding -> post-LN transformer: the part of the
    masked-prediction models (this family, `bestrq`) that extraction runs. Subclasses add their
    head after calling this constructor, so weights are created in the same order.

    Args:
        config: an `EncoderFields` (or subclass).
    """

    def __init__(self, config: EncoderFields):
        super().__init__()
        self.config = config
        init_mel_stats(self, config.n_mels)
        eps = config.layer_norm_eps
        self.embed = InputEmbedding(config.n_mels, config.hidden, config.dropout, eps, config.positions,
                                    config.conv_pos_kernel, config.conv_pos_groups)
        self.encoder = Encoder(
            config.hidden, config.heads, config.ffn, config.layers, config.dropout, config.share_weights, eps
        )
        self.feature_dim = config.hidden
        self.num_hidden = config.layers + 1

    def _encode(self, x: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        keep = valid_mask(frames, x.shape[1])  # (B, T)
        h = self.embed(x, keep)  # (B, T, D)
        return [h, *self.encoder(h, keep)]

    def hidden_states(self, mel: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        """Input embedding and every layer's output, each `(B, T, hidden)`.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames (normalised here with corpus statistics).
            frames: `(B,)` valid frame counts.
        """
        return self._encode((mel - self.mel_mean) / self.mel_std, frames)


class MaskedReconstruction(MelTransformer):
    """Transformer encoder + reconstruction head on normalised log-Mel frames.

    Args:
        config: a `ReconstructionConfig` (or subclass).
    """

    def __init__(self, config: ReconstructionConfig):
        super().__init__(config)
        self.head = PredictionHead(config.hidden, config.n_mels, config.layer_norm_eps)

    def forward(self, mel: torch.Tensor, frames: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict]:
        """The pretraining loss on a batch.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames.
            frames: `(B,)` valid frame counts.
            step: training step (unused by this objective).

        Returns:
            Mean L1 error over altered (frame, bin) positions, and `{"altered": fraction}`.
        """
        cfg = self.config
        clean = (mel - self.mel_mean) / self.mel_std  # (B, T, F)
        keep = valid_mask(frames, clean.shape[1])  # (B, T)
        x, selected = time_alter(clean, frames, cfg.mask_proportion, cfg.mask_span)
        altered = selected[..., None].expand_as(clean)  # (B, T, F)
        if cfg.freq_mask_max > 0:
            x, band = frequency_alter(x, cfg.freq_mask_max)
            altered = altered | band[:, None, :]
        if cfg.noise_prob > 0:
            x, noisy = magnitude_alter(x, cfg.noise_prob, cfg.noise_std)
            altered = altered | noisy[:, None, None]
        altered = altered & keep[..., None]
        pred = self.head(self._encode(x, frames)[-1])  # (B, T, F)
        weight = altered.float()
        loss = ((pred - clean).abs() * weight).sum() / weight.sum().clamp(min=1.0)
        return loss, {"altered": float(weight.mean())}
