"""TERA (Liu et al. 2021): time, frequency and magnitude alteration reconstructed by a transformer, pretrained by melbench."""

from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, MaskedReconstruction, ReconstructionConfig, sizes
from upstreams._ssl import SSLSpec, SSLUpstream, prepare_ssl, load_ssl

# Time spans as Mockingjay; a zeroed band of up to 20% of the bins; Gaussian noise on 10% of clips.
ALTER = {"freq_mask_max": 0.2, "noise_prob": 0.1, "noise_std": 0.2}

SPEC = SSLSpec(
    name="tera",
    config_cls=ReconstructionConfig,
    presets={
        "tiny": ReconstructionConfig(**sizes(32, 2, 2, **TINY_TRAIN, **ALTER)),
        "small": ReconstructionConfig(**sizes(192, 3, 3, **SMALL_TRAIN, **ALTER)),
        "base": ReconstructionConfig(**sizes(768, 12, 3, **ALTER)),
        "large": ReconstructionConfig(**sizes(768, 12, 12, **ALTER)),
    },
    model_cls=MaskedReconstruction,
)

# What the contract tests use: an explicitly untrained tiny model (no checkpoint needed).
CHECK_OPTIONS = {"random_init": True, "preset": "tiny"}


def load(**options) -> SSLUpstream:
    """Load TERA.

    Args:
        **options: as `upstreams.mockingjay.load`.

    Returns:
        The upstream.
    """
    return load_ssl(SPEC, **options)


def prepare(quick: bool = False, progress: bool = True) -> dict:
    """`load` options for `melbench run`: the default checkpoint, pretrained first if missing."""
    return prepare_ssl(SPEC, quick, progress)
