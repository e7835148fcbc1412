"""Any local Hugging Face `transformers` waveform model as an upstream: `hf:FOLDER`.

FOLDER is what `save_pretrained` writes (or a downloaded model repository): `config.json`,
`model.safetensors` and the feature extractor's `preprocessor_config.json`. The wav2vec 2.0
family is read: wav2vec 2.0, HuBERT, WavLM, data2vec-audio, and models that ship their own code
on the same convolutional front-end, such as MERT, behind `--set trust_remote_code=true` (that
code runs on this machine: only set it for a folder you trust). Needs the `[hf]` extra.

Every hidden state is a layer (the input embedding, then each transformer layer). The sample
rate is the feature extractor's; the frame rate and the frame positions come from the model's
own convolution strides and kernels: frame j covers samples `[S j, S j + R)` (total stride S,
receptive field R), so it is centred `(R - 1) / 2` samples after `S j`, and melbench's frame i
(at `i / frame_rate` s, `1 + n // S` of them) takes the model frame whose centre is nearest.
Clips are batched with attention masks where the feature extractor returns them (models
trained with padding masks) and a padded batch, tried once at load, gives each clip its own
features; otherwise (group-norm front-ends such as wav2vec2-base; data2vec-audio, whose
stacked positional convolutions let padding in) they go one at a time. Weights are read from safetensors only:
a folder holding only `pytorch_model.bin` (a pickle) is refused.
"""

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmark.check import ATOL
from benchmark.errors import MelbenchError
from benchmark.upstream import Upstream, loop_extract_batch

ARGUMENT = "checkpoint"  # `hf:FOLDER` fills `checkpoint` (hashed into the feature cache key)
REQUIRES = ("transformers",)  # the contract tests skip it, with that reason, where it is missing
# The contract tests check a tiny randomly initialised wav2vec 2.0 built from transformers' config.
CHECK_OPTIONS = {"random_init": True}
# transformers' config classes of the families `random_init` builds (the tests build each).
TINY_FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MelbenchError("the hf upstream needs transformers; install the extra: pip install -e '.[hf]'") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


class HFUpstream(Upstream):
    """A `transformers` waveform model behind the melbench contract.

    Args:
        model: the loaded model (its config has `conv_stride` and `conv_kernel`).
        extractor: its feature extractor.
        where: the folder (for messages).
        layer: which hidden state `extract` returns (0 = input embedding, -1 = last).
        device: where the model runs.
    """

    def __init__(self, model: torch.nn.Module, extractor: Any, where: str, layer: int = -1, device: str = "cpu"):
        config = model.config
        strides, kernels = getattr(config, "conv_stride", None), getattr(config, "conv_kernel", None)
        if not strides or not kernels:
            raise MelbenchError(f"{where}: {type(model).__name__} has no convolutional waveform front-end "
                                "(conv_stride, conv_kernel); the hf upstream reads the wav2vec 2.0 family")
        self.device = torch.device(device)
        self.model, self.extractor = model.to(self.device).eval(), extractor
        self.strides, self.kernels = [int(s) for s in strides], [int(k) for k in kernels]
        self.hop = math.prod(self.strides)  # samples per frame
        self.receptive = 1 + sum((k - 1) * math.prod(self.strides[:i]) for i, k in enumerate(self.kernels))
        self.sample_rate = int(extractor.sampling_rate)
        self.frame_rate = self.sample_rate / self.hop
        self.num_layers = int(config.num_hidden_layers) + 1
        self.feature_dim = int(config.hidden_size)
        self.batched = bool(getattr(extractor, "return_attention_mask", False)) and self._padding_is_masked()
        if not -self.num_layers <= layer < self.num_layers:
            raise MelbenchError(f"{where}: layer {layer} out of range for {self.num_layers} hidden states")
        self.layer = layer
        self.provenance = {"hf_model": type(model).__name__, "model_type": config.model_type, "folder": where,
                           "params": sum(p.numel() for p in model.parameters())}

    def _padding_is_masked(self) -> bool:
        """Whether a padded batch gives each clip its own features: some models take a mask yet
        let padding in (data2vec-audio's stacked positional convolutions), so try it once."""
        rng = torch.Generator().manual_seed(0)
        short, long = torch.randn(self.sample_rate // 2, generator=rng), torch.randn(self.sample_rate, generator=rng)
        self.batched = True
        alone, together = self._hidden([short])[0], self._hidden([short, long])[0]
        return bool((alone - together).abs().max() <= ATOL)

    def _model_frames(self, n_samples: torch.Tensor) -> torch.Tensor:
        """Frames the convolutions give for clips of `n_samples` (whole windows only)."""
        n = n_samples.clone()
        for k, s in zip(self.kernels, self.strides):
            n = torch.div(n - k, s, rounding_mode="floor") + 1
        return n.clamp(min=1)

    def _grid_index(self, n_samples: int, model_frames: int) -> torch.Tensor:
        """`(1 + n // hop,)` index of the model frame whose centre is nearest each melbench frame."""
        grid = torch.arange(1 + n_samples // self.hop, dtype=torch.float64) * self.hop  # sample of each grid frame
        nearest = torch.floor((grid - (self.receptive - 1) / 2) / self.hop + 0.5).long()
        return nearest.clamp(0, model_frames - 1)

    @torch.no_grad()
    def _hidden(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every hidden state of each clip on melbench's grid: a list of `(L, T_b, D)`."""
        inputs = self.extractor([w.cpu().numpy() for w in waves], sampling_rate=self.sample_rate,
                                return_tensors="pt", padding=True, return_attention_mask=self.batched)
        values = inputs["input_values"]  # (B, max_n), normalised as the model was trained
        lengths = torch.tensor([len(w) for w in waves])
        # clips shorter than one receptive field get zeros after their samples (one frame)
        values = torch.nn.functional.pad(values, (0, max(0, self.receptive - values.shape[1])))
        kwargs = {"input_values": values.to(self.device)}
        if self.batched:
            mask = torch.arange(values.shape[1])[None, :] < lengths.clamp(min=self.receptive)[:, None]
            kwargs["attention_mask"] = mask.long().to(self.device)
        out = self.model(**kwargs, output_hidden_states=True)
        hidden = torch.stack(out.hidden_states, dim=1).float().cpu()  # (B, L, T', D)
        frames = self._model_frames(lengths.clamp(min=self.receptive))
        return [hidden[b][:, self._grid_index(int(lengths[b]), int(frames[b]))] for b in range(len(waves))]

    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        out = self._hidden([wave])[0]  # (L, T, D)
        return out if layers else out[self.layer]

    def extract_batch(self, waves: torch.Tensor, lengths: torch.Tensor,
                      layers: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.batched:  # padding would change a group-norm front-end's features
            return loop_extract_batch(self, waves, lengths, layers)
        outs = self._hidden([w[: int(n)] for w, n in zip(waves, lengths)])
        frames = torch.tensor([o.shape[1] for o in outs])
        padded = [torch.nn.functional.pad(o, (0, 0, 0, int(frames.max()) - o.shape[1])) for o in outs]
        feats = torch.stack(padded)  # (B, L, T, D)
        return (feats if layers else feats[:, self.layer]), frames


def tiny_model(folder: Path, family: str = "wav2vec2", attention_mask: bool = True) -> Path:
    """Write a tiny randomly initialised model of a `TINY_FAMILIES` family with `save_pretrained`.

    Args:
        folder: where to write it.
        family: the model type.
        attention_mask: layer-norm front-end whose feature extractor returns attention masks
            (as wav2vec2-large); else group norm without masks (as wav2vec2-base).

    Returns:
        The folder.
    """
    transformers = _transformers()
    if family not in TINY_FAMILIES:
        raise MelbenchError(f"hf: random_init builds {', '.join(TINY_FAMILIES)}, not {family!r}")
    config = transformers.AutoConfig.for_model(
        family, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8),  # 320-sample hop, 20 ms
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer" if attention_mask else "group", do_stable_layer_norm=attention_mask,
    )
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=attention_mask, do_normalize=True).save_pretrained(folder)
    return Path(folder)


def load(checkpoint: str = "", layer: int = -1, device: str = "cpu", trust_remote_code: bool = False,
         random_init: bool = False, family: str = "wav2vec2") -> HFUpstream:
    """Load a local `transformers` model folder.

    Args:
        checkpoint: the folder (`hf:FOLDER` fills it).
        layer: hidden state returned by `extract` (-1 = last).
        device: torch device.
        trust_remote_code: run the model code the folder ships (MERT and the like).
        random_init: a tiny random model of `family` instead (contract tests).
        family: with `random_init`, one of `TINY_FAMILIES`.

    Returns:
        The upstream.
    """
    transformers = _transformers()
    if random_init:
        with tempfile.TemporaryDirectory() as tmp:
            return load(str(tiny_model(Path(tmp), family)), layer=layer, device=device)
    folder = Path(checkpoint).expanduser()
    if not checkpoint or not (folder / "config.json").is_file():
        raise MelbenchError(f"hf: {checkpoint or 'no folder given'}: expected a model folder with config.json "
                            "(what save_pretrained writes), e.g. --upstreams hf:/path/to/wav2vec2-base")
    if not list(folder.glob("*.safetensors")):
        found = ", ".join(sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".ckpt"))) or "none"
        raise MelbenchError(f"{folder}: no .safetensors weights (found: {found}); melbench does not unpickle "
                            "weights files, convert them with save_pretrained(..., safe_serialization=True)")
    kwargs = {"local_files_only": True, "trust_remote_code": bool(trust_remote_code)}
    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, **kwargs)
        model = transformers.AutoModel.from_pretrained(folder, use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError, ImportError, RuntimeError) as err:
        hint = " (set --set trust_remote_code=true to run the code it ships)" \
            if "trust_remote_code" in str(err) and not trust_remote_code else ""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MelbenchError(f"{folder}: cannot load it with transformers ({first}){hint}") from None
    return HFUpstream(model, extractor, str(folder), layer, device)
