"""Audio ALBERT (Chi et al. 2021): Mockingjay with one layer's weights shared across depth, pretrained by melbench."""

from upstreams._reconstruction import SMALL_TRAIN, TINY_TRAIN, MaskedReconstruction, ReconstructionConfig, sizes
from upstreams._ssl import SSLSpec, SSLUpstream, prepare_ssl, load_ssl

SHARED = {"share_weights": True}

# base = 3 applications of one 768-wide layer; large = 12 applications.
SPEC = SSLSpec(
    name="audio_albert",
    config_cls=ReconstructionConfig,
    presets={
        "tiny": ReconstructionConfig(**sizes(32, 2, 2, **TINY_TRAIN, **SHARED)),
        "small": ReconstructionConfig(**sizes(192, 3, 3, **SMALL_TRAIN, **SHARED)),
        "base": ReconstructionConfig(**sizes(768, 12, 3, **SHARED)),
        "large": ReconstructionConfig(**sizes(768, 12, 12, **SHARED)),
    },
    model_cls=MaskedReconstruction,
)

# What the contract tests use: an explicitly untrained tiny model (no checkpoint needed).
CHECK_OPTIONS = {"random_init": True, "preset": "tiny"}


def load(**options) -> SSLUpstream:
    """Load Audio ALBERT.

    Args:
        **options: as `upstreams.mockingjay.load`.

    Returns:
        The upstream.
    """
    return load_ssl(SPEC, **options)


def prepare(quick: bool = False, progress: bool = True) -> dict:
    """`load` options for `melbench run`: the default checkpoint, pretrained first if missing."""
    return prepare_ssl(SPEC, quick, progress)
