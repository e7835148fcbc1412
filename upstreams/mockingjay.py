"""Mockingjay (Liu et al. 2020): masked log-Mel reconstruction with a transformer, pretrained by melbench."""

from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, MaskedReconstruction, ReconstructionConfig, sizes
from upstreams._ssl import SSLSpec, SSLUpstream, prepare_ssl, load_ssl

# base = the paper's 3 layers x 768 (12 heads, FFN 3072); large = 12 layers.
SPEC = SSLSpec(
    name="mockingjay",
    config_cls=ReconstructionConfig,
    presets={
        "tiny": ReconstructionConfig(**sizes(32, 2, 2, **TINY_TRAIN)),
        "small": ReconstructionConfig(**sizes(192, 3, 3, **SMALL_TRAIN)),
        "base": ReconstructionConfig(**sizes(768, 12, 3)),
        "large": ReconstructionConfig(**sizes(768, 12, 12)),
    },
    model_cls=MaskedReconstruction,
)

# What the contract tests use: an explicitly untrained tiny model (no checkpoint needed).
CHECK_OPTIONS = {"random_init": True, "preset": "tiny"}


def load(**options) -> SSLUpstream:
    """Load Mockingjay.

    Args:
        **options: `checkpoint`, `layer` (-1 = last), `preset` (tiny/small/base/large),
            `device`, `corpus`, `random_init`, `seed`, and config fields with `random_init`
            (see `upstreams._ssl.load_ssl`).

    Returns:
        The upstream.
    """
    return load_ssl(SPEC, **options)


def prepare(quick: bool = False, progress: bool = True) -> dict:
    """`load` options for `melbench run`: the default checkpoint, pretrained first if missing."""
    return prepare_ssl(SPEC, quick, progress)
