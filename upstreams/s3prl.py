"""An s3prl upstream from a local checkpoint: `--upstreams s3prl:NAME --set checkpoint=PATH`.

NAME is an s3prl upstream family with an on-the-fly front-end (`mockingjay`, `tera`,
`audio_albert`, `apc`); the adapter imports `s3prl.upstream.<NAME>.expert` directly, because
`import s3prl.hub` fails on current torchaudio, and runs s3prl's own `UpstreamExpert` on each
clip, every hidden state it returns. Needs the `[s3prl]` extra.

Frames: s3prl's Kaldi filterbanks keep only whole 25 ms windows (`snip_edges`), so frame i is
centred at 10 i + 12.5 ms and a clip of n samples gives 1 + (n - 400) // 160 frames. melbench
frames are centred at 10 i ms, 1 + n // 160 of them: for a Kaldi front-end the adapter shifts
s3prl's frames one place later (centres within 2.5 ms) and repeats the edge frames to that
count, and clips shorter than two windows are zero-padded to two (s3prl divides by the std
over frames). s3prl's on-the-fly features (log-Mel, linear, MFCC: `audio.input`) come from a
centred STFT, already on melbench's grid, and are taken as they are.
"""

import importlib
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import MelbenchError
from benchmark.upstream import Reference, Upstream
from upstreams._s3prl import reference_extract, reference_pretrain_step, s3prl_model_module

ARGUMENT = "name"  # `s3prl:NAME` fills `name`
REQUIRES = ("s3prl",)  # the contract tests skip it, with that reason, where s3prl is missing
# The contract tests check a checkpoint written by s3prl's own classes with random weights.
CHECK_OPTIONS = {"name": "mockingjay", "random_init": True}


def _s3prl_installed() -> bool:
    try:
        s3prl_model_module()
        return True
    except MelbenchError:
        return False


# `melbench bench` times s3prl's TransformerModel beside melbench's Mockingjay, built from one config.
REFERENCE = Reference(library="s3prl", upstream="mockingjay", available=_s3prl_installed,
                      pretrain_step=reference_pretrain_step, extract=reference_extract)

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

    def __init__(self, expert: torch.nn.Module, name: str, layer: int = -1, centred: bool = False):
        self.expert, self.name, self.centred = expert.eval(), name, centred
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
        if self.centred:  # s3prl's on-the-fly STFT: 1 + n // 160 frames centred at 10 i ms, as melbench's
            # the centred STFT reflects 200 samples at each end, so it needs 201 at least
            padded = torch.nn.functional.pad(wave, (0, max(0, WINDOW // 2 + 1 - wave.shape[-1])))
            hidden = self._hidden(padded)  # (L, T', D)
            index = torch.arange(n_frames).clamp(max=hidden.shape[1] - 1)
        else:
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


def random_checkpoint(name: str, folder: Path, audio: dict[str, Any] | None = None, sequence_length: int = 0) -> Path:
    """An s3prl-format checkpoint of a tiny random model built by s3prl's own classes.

    Args:
        name: `mockingjay` (the transformer families share its format).
        folder: where to write `states.ckpt`.
        audio: its `Upstream_Config.audio` front-end (default: Kaldi log filterbanks).
        sequence_length: its `task.sequence_length` (s3prl cuts longer inputs; 0: never).

    Returns:
        The checkpoint file.
    """
    from upstreams._s3prl_frontends import kaldi_audio_config, s3prl_frontend

    if name not in ("mockingjay", "tera", "audio_albert"):
        raise MelbenchError(f"s3prl:{name}: random_init builds the transformer families only")
    model = s3prl_model_module()
    transformer = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                   "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                   "initializer_range": 0.02, "layer_norm_eps": 1e-12, "share_layer": name == "audio_albert",
                   "pre_layer_norm": False}
    torch.manual_seed(0)
    audio = audio or kaldi_audio_config()
    frontend = s3prl_frontend(audio, where="random checkpoint")
    input_dim = int(frontend(torch.zeros(1, SR_HZ), torch.tensor([SR_HZ]))[0].shape[-1])
    config = model.TransformerConfig(transformer)
    net = model.TransformerModel(config, input_dim=input_dim)
    head = model.TransformerSpecPredictionHead(config, input_dim)
    states = {"Transformer": net.state_dict(), "SpecHead": head.state_dict(), "Config": {},
              "Upstream_Config": {"transformer": transformer, "task": {"sequence_length": sequence_length},
                                  "audio": audio}}
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
    return S3prlUpstream(expert, name, layer, centred=_online_features(Path(checkpoint)))


def _online_features(checkpoint: Path) -> bool:
    """Whether the checkpoint's front-end is s3prl's centred on-the-fly STFT (else Kaldi's)."""
    from upstreams._s3prl import load_s3prl_file

    states = load_s3prl_file(checkpoint)
    config = states.get("Upstream_Config") or states.get("Config") or {}
    audio = config.get("audio") if isinstance(config, dict) else None
    return isinstance(audio, dict) and "kaldi" not in audio and isinstance(audio.get("input"), dict)
