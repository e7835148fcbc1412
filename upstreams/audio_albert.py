"""Audio ALBERT (Chi et al. 2021): Mockingjay with one layer's weights shared across depth, pretrained by melbench."""

from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, MaskedReconstruction, ReconstructionConfig, sizes
from upstreams._ssl import CHECK_OPTIONS, SSLSpec

SHARED = {"share_weights": True}

# base = 3 applications of one 768-wide layer; large = 12 applications. small: wav2vec 2.0's
# convolutional positions, as the small Mockingjay and TERA (validation ablation,
# docs/ssl_upstreams.md, "Positions"); base and large keep the paper's sinusoidal ones.
SPEC = SSLSpec(
    name="audio_albert",
    config_cls=ReconstructionConfig,
    presets={
        "tiny": ReconstructionConfig(**sizes(32, 2, 2, **TINY_TRAIN, **SHARED)),
        "small": ReconstructionConfig(**sizes(192, 3, 3, positions="conv", **SMALL_TRAIN, **SHARED)),
        "base": ReconstructionConfig(**sizes(768, 12, 3, **SHARED)),
        "large": ReconstructionConfig(**sizes(768, 12, 12, **SHARED)),
    },
    model_cls=MaskedReconstruction,
)

# The contract: `load(**options)` (options: `upstreams._ssl.load_ssl`) and `SPEC` (the harness
# pretrains it); the imported CHECK_OPTIONS are what the contract tests load it with.
load = SPEC.load
to_s3prl = SPEC.to_s3prl  # `melbench to-s3prl`: this model in s3prl's checkpoint format
