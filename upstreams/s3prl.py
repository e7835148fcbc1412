"""An s3prl upstream from a local checkpoint: `--upstreams s3prl:NAME --set checkpoint=PATH`.

NAME is an s3prl upstream family with an on-the-fly front-end (`mockingjay`, `tera`,
`audio_albert`, `apc`); the adapter imports `s3prl.upstream.<NAME>.expert` directly, because
`import s3prl.hub` fails on current torchaudio, and runs s3prl's own `UpstreamExpert` on each
clip, every hidden state it returns. Needs the `[s3prl]` extra.

Frames: s3prl's Kaldi filterbanks keep only whole 25 ms windows (`snip_edges`), so frame i is
centred at 10 i + 12.5 ms and a clip of n samples gives 1 + (n - 400) // 160 frames. melbench
frames are centred at 10 i ms, 1 + n // 160 of them: the adapter shifts s3prl's frames one
place later (centres within 2.5 ms) and repeats the edge frames to that count, and clips
shorter than two windows are zero-padded to two (s3prl divides by the std over frames).
"""

import importlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import MelbenchError
from benchmark.upstream import Upstream

ARGUMENT = "name"  # `s3prl:NAME` fills `name`
REQUIRES = ("s3prl",)  # the contract tests skip it, with that reason, where s3prl is missing
# The contract tests check a checkpoint written by s3prl's own classes with random weights.
CHECK_OPTIONS = {"name": "mockingjay", "random_init": True}

SR_HZ, HOP, WINDOW = 16000, 160, 400


class S3prlUpstream(Upstream):
    """s3prl's `UpstreamExpert` behind the melbench contract.

    Args:
        expert: the loaded `UpstreamExpert`.
        name: its family (for messages).
        layer: which hidden state `extract` returns.
    """

    sample_rate = SR_HZ
    frame_rate = SR_HZ / HOP

    def __init__(self, expert: torch.nn.Module, name: str, layer: int = -1):
        self.expert, self.name = expert.eval(), name
        probe = self._hidden(torch.zeros(SR_HZ))  # (L, T, D)
        self.num_layers, self.feature_dim = probe.shape[0], probe.shape[2]
        if not -self.num_layers <= layer < self.num_layers:
            raise MelbenchError(f"s3prl:{name}: layer {layer} out of range for {self.num_layers} hidden states")
        self.layer = layer

    def _hidden(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.expert([wave])
        return torch.stack([h[0] for h in out["hidden_states"]]).float()  # L x (1, T, D) -> (L, T, D)

    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        """Every hidden state (or the chosen one) on melbench's frame grid (module docstring)."""
        n_frames = 1 + wave.shape[-1] // HOP
        # two windows at least: s3prl normalises by the std over frames, NaN for a single frame
        padded = torch.nn.functional.pad(wave, (0, max(0, WINDOW + HOP - wave.shape[-1])))
        hidden = self._hidden(padded)  # (L, T', D), T' = 1 + (n - 400) // 160
        index = (torch.arange(n_frames) - 1).clamp(0, hidden.shape[1] - 1)  # s3prl frame i -> melbench frame i + 1
        out = hidden[:, index]  # (L, n_frames, D)
        return out if layers else out[self.layer]


def _expert_class(name: str) -> Any:
    try:
        return importlib.import_module(f"s3prl.upstream.{name}.expert").UpstreamExpert
    except ImportError as err:
        if "s3prl" in str(err) and importlib.util.find_spec("s3prl") is None:
            raise MelbenchError("s3prl is not installed; install the extra: pip install -e '.[s3prl]'") from None
        raise MelbenchError(f"s3prl:{name}: no such s3prl upstream family, or it does not import ({err})") from None


def random_checkpoint(name: str, folder: Path) -> Path:
    """An s3prl-format checkpoint of a tiny random model built by s3prl's own classes.

    Args:
        name: `mockingjay` (the transformer families share its format).
        folder: where to write `states.ckpt`.

    Returns:
        The checkpoint file.
    """
    from upstreams._s3prl import kaldi_audio_config, s3prl_model_module

    if name not in ("mockingjay", "tera", "audio_albert"):
        raise MelbenchError(f"s3prl:{name}: random_init builds the transformer families only")
    model = s3prl_model_module()
    transformer = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                   "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                   "initializer_range": 0.02, "layer_norm_eps": 1e-12, "share_layer": name == "audio_albert",
                   "pre_layer_norm": False}
    torch.manual_seed(0)
    config = model.TransformerConfig(transformer)
    net = model.TransformerModel(config, input_dim=80)
    head = model.TransformerSpecPredictionHead(config, 80)
    states = {"Transformer": net.state_dict(), "SpecHead": head.state_dict(), "Config": {},
              "Upstream_Config": {"transformer": transformer, "task": {"sequence_length": 0},
                                  "audio": kaldi_audio_config()}}
    path = Path(folder) / "states.ckpt"
    torch.save(states, path)
    return path


def load(name: str, checkpoint: str = "", layer: int = -1, random_init: bool = False) -> S3prlUpstream:
    """Load s3prl's upstream NAME from a local checkpoint.

    Args:
        name: the s3prl upstream family.
        checkpoint: the s3prl checkpoint file.
        layer: hidden state returned by `extract` (-1 = last).
        random_init: build a tiny random checkpoint with s3prl's own classes (contract tests).

    Returns:
        The upstream.
    """
    expert_cls = _expert_class(name)
    if random_init:
        with tempfile.TemporaryDirectory() as tmp:
            return S3prlUpstream(expert_cls(str(random_checkpoint(name, Path(tmp)))), name, layer)
    if not checkpoint or not Path(checkpoint).is_file():
        raise MelbenchError(f"s3prl:{name}: give a local checkpoint file with --set checkpoint=PATH "
                            f"(got {checkpoint or 'none'})")
    try:
        expert = expert_cls(str(checkpoint))
    except (KeyError, RuntimeError, OSError, ValueError) as err:
        raise MelbenchError(f"{checkpoint}: not an s3prl {name} checkpoint ({type(err).__name__}: {err})") from None
    return S3prlUpstream(expert, name, layer)
