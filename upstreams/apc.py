"""APC (Chung et al. 2019): a unidirectional GRU predicting the log-Mel frame n steps ahead, pretrained by melbench."""

from dataclasses import dataclass

import torch
from torch import nn

from upstreams._dropout import Dropout
from upstreams._ssl import CHECK_OPTIONS, SSLSpec, TrainFields, init_mel_stats
from upstreams._transformer import valid_mask


@dataclass(frozen=True)
class APCConfig(TrainFields):
    """Defaults: the paper's 3 GRU layers of 512 with residual connections, n = 3, Adam(W) 1e-3."""

    hidden: int = 512
    layers: int = 3
    shift: int = 3  # predict frame t + shift from frames <= t
    dropout: float = 0.1
    lr: float = 1e-3
    input_projection: bool = True  # False: the first GRU reads the frames (s3prl's APC)
    residual: bool = True


class APC(nn.Module):
    """Linear input projection, then GRU layers (residual from the second on), then a linear predictor.

    Hidden states are the projection and each GRU layer's output, all `hidden` wide. Every
    layer is causal, so padding after a clip cannot change its frames. Without the input
    projection (s3prl's APC) the first GRU reads the frames and the hidden states are the GRU
    layers' outputs.

    Args:
        config: an `APCConfig`.
    """

    def __init__(self, config: APCConfig):
        super().__init__()
        self.config = config
        init_mel_stats(self, config.n_mels)
        self.proj = nn.Linear(config.n_mels, config.hidden) if config.input_projection else None
        first_in = config.hidden if config.input_projection else config.n_mels
        self.grus = nn.ModuleList(
            nn.GRU(first_in if i == 0 else config.hidden, config.hidden, batch_first=True) for i in range(config.layers)
        )
        self.drop = Dropout(config.dropout)
        self.predict = nn.Linear(config.hidden, config.n_mels)
        self.feature_dim = config.hidden
        self.num_hidden = config.layers + int(config.input_projection)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.proj(x) if self.proj is not None else x  # (B, T, H) or the frames
        outs = [h] if self.proj is not None else []
        for i, gru in enumerate(self.grus):
            # float32 even under the `precision="bf16"` autocast: CPU autocast's GRU is slower than
            # float32's (4.5x measured, 8 x 10 s at 512 wide); a GPU's autocast still applies
            with torch.autocast("cpu", enabled=False):
                y, _ = gru(h.float())  # (B, T, H)
            y = self.drop(y)
            h = y + h if i > 0 and self.config.residual else y  # residual between GRU layers, as in the paper
            outs.append(h)
        return outs

    def hidden_states(self, mel: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        """Projection and every GRU layer's output, each `(B, T, hidden)`.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames (normalised here with corpus statistics).
            frames: `(B,)` valid frame counts (unused: the model is causal).
        """
        return self._encode((mel - self.mel_mean) / self.mel_std)

    def forward(self, mel: torch.Tensor, frames: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict]:
        """L1 error of predicting frame t + shift from frames up to t, over valid pairs.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames.
            frames: `(B,)` valid frame counts.
            step: training step (unused).

        Returns:
            The loss and `{}`.
        """
        n = self.config.shift
        x = (mel - self.mel_mean) / self.mel_std  # (B, T, F)
        pred = self.predict(self._encode(x[:, :-n])[-1])  # (B, T - n, F): guesses for frames n..T-1
        target = x[:, n:]  # (B, T - n, F)
        pairs = valid_mask(frames - n, target.shape[1]).float()[..., None]  # (B, T - n, 1): target inside the clip
        loss = ((pred - target).abs() * pairs).sum() / (pairs.sum() * x.shape[-1]).clamp(min=1.0)
        return loss, {}


# base = the paper's size; large (4 x 1024) is melbench's own scale-up.
TINY_TRAIN = {"batch_size": 4, "crop_s": 1.0, "warmup_steps": 5, "lr": 3e-3, "dropout": 0.0}
SPEC = SSLSpec(
    name="apc",
    config_cls=APCConfig,
    presets={
        "tiny": APCConfig(hidden=32, layers=2, **TINY_TRAIN),
        "small": APCConfig(hidden=256, layers=3, batch_size=8, crop_s=3.0, warmup_steps=200),
        "base": APCConfig(hidden=512, layers=3),
        "large": APCConfig(hidden=1024, layers=4),
    },
    model_cls=APC,
)

# The contract: `load(**options)` (options: `upstreams._ssl.load_ssl`) and `SPEC` (the harness
# pretrains it); the imported CHECK_OPTIONS are what the contract tests load it with.
load = SPEC.load
to_s3prl = SPEC.to_s3prl  # `melbench to-s3prl`: this model in s3prl's checkpoint format
