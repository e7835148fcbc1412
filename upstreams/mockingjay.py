"""Mockingjay (Liu et al. 2020): masked log-Mel reconstruction with a transformer, pretrained by melbench."""

from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, MaskedReconstruction, ReconstructionConfig, sizes
from upstreams._ssl import CHECK_OPTIONS, SSLSpec

# base = the paper's 3 layers x 768 (12 heads, FFN 3072); large = 12 layers. small takes wav2vec 2.0's
# convolutional positions: the sinusoidal ones, as large as the input projection at this budget, cost
# a few-label phone probe 0.10 of validation accuracy (docs/ssl_upstreams.md, "Positions").
SPEC = SSLSpec(
    name="mockingjay",
    config_cls=ReconstructionConfig,
    presets={
        "tiny": ReconstructionConfig(**sizes(32, 2, 2, **TINY_TRAIN)),
        "small": ReconstructionConfig(**sizes(192, 3, 3, positions="conv", **SMALL_TRAIN)),
        "base": ReconstructionConfig(**sizes(768, 12, 3)),
        "large": ReconstructionConfig(**sizes(768, 12, 12)),
    },
    model_cls=MaskedReconstruction,
)

# The contract: `load(**options)` (options: `upstreams._ssl.load_ssl`) and `SPEC` (the harness
# pretrains it); the imported CHECK_OPTIONS are what the contract tests load it with.
load = SPEC.load
to_s3prl = SPEC.to_s3prl  # `melbench to-s3prl`: this model in s3prl's checkpoint format
