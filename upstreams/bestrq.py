"""BEST-RQ-style masked prediction of random-projection codes (Chiu et al. 2022), pretrained by melbench.

The targets need no learning: each corpus-normalised log-Mel frame is projected by a fixed
random matrix (`n_mels` -> `code_dim`), L2-normalised, and given the index of the nearest of
`codebook_size` fixed random unit vectors. Spans of frames (half the frames, 200 ms spans by
default, the harder masking small-compute work points to) are replaced by Gaussian noise; a
post-LN transformer on the masked sequence predicts each masked frame's code with a softmax
over the codebook (cross-entropy). The projection and the codebook are buffers drawn from
`quantizer_seed` and stored in the checkpoint, so a checkpoint's targets never change. Frames
stay at melbench's 100 Hz (the paper stacks four 10 ms frames); the model is melbench's own
design within the paper's objective.
"""

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from upstreams._masking import span_mask
from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, EncoderFields, MelTransformer, sizes
from upstreams._ssl import CHECK_OPTIONS, SSLSpec
from upstreams._transformer import Linear, valid_mask


@dataclass(frozen=True)
class BestRQConfig(EncoderFields):
    """Objective fields on top of the encoder's (defaults: a 12 x 768 encoder, 8192 codes of 16 dims)."""

    layers: int = 12
    codebook_size: int = 8192
    code_dim: int = 16
    mask_proportion: float = 0.5  # of each clip's frames, in spans
    mask_span: int = 20  # frames (200 ms)
    mask_noise_std: float = 0.1  # masked frames become N(0, std) noise (inputs are corpus-normalised)
    quantizer_seed: int = 1234


class BestRQ(MelTransformer):
    """Transformer encoder + code classifier; frozen random-projection quantiser as buffers.

    Args:
        config: a `BestRQConfig`.
    """

    def __init__(self, config: BestRQConfig):
        super().__init__(config)
        self.head = Linear(config.hidden, config.codebook_size)
        rng = torch.Generator().manual_seed(config.quantizer_seed)  # the targets do not depend on the weight seed
        projection = torch.randn(config.n_mels, config.code_dim, generator=rng) * (2 / (config.n_mels + config.code_dim)) ** 0.5
        codebook = F.normalize(torch.randn(config.codebook_size, config.code_dim, generator=rng), dim=-1)
        self.register_buffer("projection", projection)  # (n_mels, code_dim), Xavier-normal
        self.register_buffer("codebook", codebook)  # (K, code_dim), unit rows

    @torch.no_grad()
    def targets(self, clean: torch.Tensor) -> torch.Tensor:
        """`(B, T)` code of each normalised frame: nearest codebook row to its unit projection."""
        z = F.normalize(clean.float() @ self.projection, dim=-1)  # (B, T, code_dim)
        return (z @ self.codebook.T).argmax(-1)  # unit vectors: the largest dot product is the nearest

    def forward(self, mel: torch.Tensor, frames: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict]:
        """The pretraining loss on a batch.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames.
            frames: `(B,)` valid frame counts.
            step: training step (unused by this objective).

        Returns:
            Mean cross-entropy over masked frames, and `{"masked": fraction, "accuracy": of the codes}`.
        """
        cfg = self.config
        clean = (mel - self.mel_mean) / self.mel_std  # (B, T, F)
        keep = valid_mask(frames, clean.shape[1])  # (B, T)
        selected = span_mask(frames, clean.shape[1], cfg.mask_proportion, cfg.mask_span)[0] & keep  # (B, T)
        noise = torch.randn_like(clean) * cfg.mask_noise_std
        x = torch.where(selected[..., None], noise, clean)
        logits = self.head(self._encode(x, frames)[-1])[selected]  # (N, K)
        codes = self.targets(clean)[selected]  # (N,)
        loss = F.cross_entropy(logits.float(), codes) if len(codes) else logits.sum() * 0.0
        accuracy = float((logits.argmax(-1) == codes).float().mean()) if len(codes) else 0.0
        return loss, {"masked": float(selected.float().mean()), "accuracy": accuracy}


# small: wav2vec 2.0's convolutional positions, as the reconstruction family's small presets
# (validation ablation, docs/ssl_upstreams.md, "Positions"); base and large keep sinusoidal ones.
SPEC = SSLSpec(
    name="bestrq",
    config_cls=BestRQConfig,
    presets={
        "tiny": BestRQConfig(**sizes(32, 2, 2, **TINY_TRAIN), codebook_size=64, mask_span=5),
        "small": BestRQConfig(**sizes(192, 3, 3, positions="conv", **SMALL_TRAIN), codebook_size=1024),
        "base": BestRQConfig(),
        "large": BestRQConfig(**sizes(1024, 16, 24)),
    },
    model_cls=BestRQ,
)

# The contract: `load(**options)` (options: `upstreams._ssl.load_ssl`) and `SPEC` (the harness
# pretrains it); the imported CHECK_OPTIONS are what the contract tests load it with.
load = SPEC.load
