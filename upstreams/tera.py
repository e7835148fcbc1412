"""TERA (Liu et al. 2021): time, frequency and magnitude alteration reconstructed by a transformer, pretrained by melbench."""

from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, MaskedReconstruction, ReconstructionConfig, sizes
from upstreams._ssl import CHECK_OPTIONS, SSLSpec

# Time spans as Mockingjay; a zeroed band of up to 20% of the bins; Gaussian noise on 10% of clips.
ALTER = {"freq_mask_max": 0.2, "noise_prob": 0.1, "noise_std": 0.2}

# small: wav2vec 2.0's convolutional positions, as the small Mockingjay (validation ablation,
# docs/ssl_upstreams.md, "Positions"); base and large keep the paper's sinusoidal ones.
SPEC = SSLSpec(
    name="tera",
    config_cls=ReconstructionConfig,
    presets={
        "tiny": ReconstructionConfig(**sizes(32, 2, 2, **TINY_TRAIN, **ALTER)),
        "small": ReconstructionConfig(**sizes(192, 3, 3, positions="conv", **SMALL_TRAIN, **ALTER)),
        "base": ReconstructionConfig(**sizes(768, 12, 3, **ALTER)),
        "large": ReconstructionConfig(**sizes(768, 12, 12, **ALTER)),
    },
    model_cls=MaskedReconstruction,
)

# The contract: `load(**options)` (options: `upstreams._ssl.load_ssl`) and `SPEC` (the harness
# pretrains it); the imported CHECK_OPTIONS are what the contract tests load it with.
load = SPEC.load
to_s3prl = SPEC.to_s3prl  # `melbench to-s3prl`: this model in s3prl's checkpoint format
