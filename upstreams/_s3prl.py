"""Bridges to s3prl's own transformer classes (the optional `[s3prl]` extra).

s3prl 0.4.18 installs, but `import s3prl.hub` fails on current torchaudio (`set_audio_backend`
and `sox_effects` are gone); the model modules themselves import cleanly, so only those are
imported here, lazily, with a clear error when the extra is missing.

`s3prl_config` maps a melbench `ReconstructionConfig` to s3prl's `TransformerConfig` fields, so
both sides can build the same architecture: post-LayerNorm BERT layers, sinusoidal positions
added to a Linear projection of the log-Mel frames, GELU (erf) everywhere.
"""

import argparse
import pickle
import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch

from benchmark.errors import MelbenchError
from benchmark.logmel import MelConfig
from upstreams._s3prl_frontends import s3prl_frontend


TRANSFORMER_FAMILIES = ("mockingjay", "tera", "audio_albert")  # s3prl's TransformerModel checkpoints
S3PRL_FAMILIES = (*TRANSFORMER_FAMILIES, "apc")


def s3prl_model_module() -> Any:
    """`s3prl.upstream.mockingjay.model` (TransformerModel, TransformerSpecPredictionHead, ...).

    Raises:
        MelbenchError: s3prl is not installed (`pip install -e .[s3prl]`).
    """
    try:
        from s3prl.upstream.mockingjay import model
    except ImportError as err:
        raise MelbenchError(f"s3prl is not installed ({err}); install the extra: pip install -e '.[s3prl]'") from None
    return model


def s3prl_config(config: Any) -> dict[str, Any]:
    """s3prl's `Transformer` config section for a melbench reconstruction config.

    Args:
        config: a `ReconstructionConfig`.

    Returns:
        The dict `TransformerConfig` takes (and s3prl checkpoints store under
        `Upstream_Config["transformer"]`).
    """
    return {
        "hidden_size": config.hidden, "num_hidden_layers": config.layers, "num_attention_heads": config.heads,
        "intermediate_size": config.ffn, "hidden_act": "gelu", "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.dropout, "initializer_range": 0.02,
        "layer_norm_eps": config.layer_norm_eps, "share_layer": config.share_weights, "pre_layer_norm": False,
    }


def build_s3prl_reconstruction(config: Any, n_mels: int = 80) -> tuple[torch.nn.Module, torch.nn.Module]:
    """s3prl's `TransformerModel` and `TransformerSpecPredictionHead` for a melbench config.

    Args:
        config: a `ReconstructionConfig`.
        n_mels: input and reconstruction size.

    Returns:
        (transformer, prediction head), randomly initialised by s3prl's own code.
    """
    model = s3prl_model_module()
    s3_config = model.TransformerConfig(s3prl_config(config))
    return model.TransformerModel(s3_config, input_dim=n_mels), model.TransformerSpecPredictionHead(s3_config, n_mels)


def s3prl_positions(n_frames: int, hidden: int) -> torch.Tensor:
    """s3prl's sinusoid table `(n_frames, hidden)` (its `position_encoding`)."""
    from s3prl.upstream.mockingjay.builder import position_encoding

    return position_encoding(n_frames, hidden)


def reference_pretrain_step(config: Any, mel: torch.Tensor, bf16: bool = False) -> Callable[[], None]:
    """melbench's reconstruction pretraining step (`benchmark.perf.models`) with s3prl's
    `TransformerModel` + `TransformerSpecPredictionHead`.

    Args:
        config: the melbench model config both sides are built from.
        mel: `(B, T, n_mels)` batch on the target device.
        bf16: autocast to bf16 (GPU only; s3prl itself trains in float32 or apex fp16).
    """
    torch.manual_seed(0)
    transformer, head = (m.to(mel.device).train() for m in build_s3prl_reconstruction(config, mel.shape[-1]))
    params = [*transformer.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    positions = s3prl_positions(mel.shape[1], config.hidden).to(mel.device)  # (T, hidden), broadcast over B
    attention = torch.ones(mel.shape[:2], device=mel.device)  # (B, T)
    selected = torch.rand(mel.shape[:2], generator=torch.Generator().manual_seed(0)).to(mel.device) < 0.15
    masked = mel.masked_fill(selected[..., None], 0.0)  # (B, T, F): masked by the data loader in s3prl
    weight = selected[..., None].expand_as(mel).float()

    def step() -> None:
        with torch.autocast(mel.device.type, dtype=torch.bfloat16, enabled=bf16 and mel.device.type == "cuda"):
            hidden = transformer(masked, positions, attention, output_all_encoded_layers=False)  # (B, T, hidden)
            pred, _ = head(hidden)  # (B, T, F)
            loss = ((pred - mel).abs() * weight).sum() / weight.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def reference_extract(config: Any, device: torch.device) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """s3prl's transformer in eval mode: log-Mel frames in, every hidden state out.

    The log-Mel front-end is melbench's on both sides, so the comparison is of the models.
    """
    torch.manual_seed(0)
    transformer = build_s3prl_reconstruction(config)[0].to(device).eval()

    @torch.inference_mode()
    def run(mel: torch.Tensor) -> list[torch.Tensor]:
        positions = s3prl_positions(mel.shape[1], config.hidden).to(device)
        return transformer(mel, positions, torch.ones(mel.shape[:2], device=device))

    return run


# melbench `MaskedReconstruction` key <- s3prl key, per layer ({i}) and for the rest. s3prl's
# query, key and value projections are one fused `qkv` projection in melbench (rows q, k, v).
LAYER_KEYS = {
    "attn.out": "attention.output.dense", "norm1": "attention.output.LayerNorm",
    "ffn.0": "intermediate.dense", "ffn.2": "output.dense", "norm2": "output.LayerNorm",
}
EDGE_KEYS = {"embed.proj": "input_representations.spec_transform", "embed.norm": "input_representations.LayerNorm"}
HEAD_KEYS = {"head.net.0": "dense", "head.net.2": "LayerNorm", "head.net.3": "output"}
QKV = ("query", "key", "value")


# The only classes besides tensors and plain containers that s3prl's checkpoints hold (its
# runner saves the command-line `Namespace`); torch's weights-only unpickler refuses any other.
S3PRL_SAFE_GLOBALS = (argparse.Namespace,)


def load_s3prl_file(path: str | Path) -> dict[str, Any]:
    """Read an s3prl checkpoint with torch's weights-only unpickler: tensors, containers and
    `S3PRL_SAFE_GLOBALS` only, so a file cannot run code; anything else is refused in one line."""
    try:
        with torch.serialization.safe_globals(list(S3PRL_SAFE_GLOBALS)):
            states = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        what = f"it holds {found.group(1)}, which" if found else "it holds an object that"
        raise MelbenchError(f"{path}: refused: {what} melbench does not unpickle (allowed: tensors, containers, "
                            f"{', '.join(c.__module__ + '.' + c.__qualname__ for c in S3PRL_SAFE_GLOBALS)})") from None
    except (OSError, RuntimeError, EOFError, ModuleNotFoundError) as err:
        raise MelbenchError(f"{path}: cannot read as an s3prl checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(states, dict):
        raise MelbenchError(f"{path}: not an s3prl checkpoint (a {type(states).__name__}, expected a dict)")
    return states


def transformer_from_s3prl(path: str | Path, spec: Any) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """A melbench reconstruction model's config and weights from an s3prl Mockingjay / TERA /
    Audio ALBERT checkpoint (`Transformer`, `SpecHead`, `Upstream_Config`).

    Args:
        path: the s3prl checkpoint file.
        spec: the melbench upstream's `SSLSpec`.

    Returns:
        (config, state dict with identity input statistics, the checkpoint's `audio` section); the
        config's `extract_window_s` is the checkpoint's `task.sequence_length` (s3prl's cut of long
        inputs, in 100 Hz frames).
    """
    states = load_s3prl_file(path)
    # legacy checkpoints keep the upstream config under `Config`, newer ones under `Upstream_Config`
    upstream_config = states.get("Config", {}) if "transformer" in states.get("Config", {}) else states.get("Upstream_Config")
    if not isinstance(upstream_config, dict) or "transformer" not in upstream_config or "Transformer" not in states:
        raise MelbenchError(f"{path}: not an s3prl transformer checkpoint (expected keys Transformer and "
                            f"Upstream_Config.transformer, got {sorted(states)})")
    t = upstream_config["transformer"]
    if t.get("pre_layer_norm") or t.get("hidden_act", "gelu") != "gelu":
        raise MelbenchError(f"{path}: melbench reads post-LayerNorm GELU transformers, got pre_layer_norm="
                            f"{t.get('pre_layer_norm')} hidden_act={t.get('hidden_act')}")
    weights = {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in states["Transformer"].items()}
    n_mels = int(weights["input_representations.spec_transform.weight"].shape[1])
    sequence_length = int((upstream_config.get("task") or {}).get("sequence_length") or 0)
    config = spec.config("base", {
        "hidden": int(t["hidden_size"]), "heads": int(t["num_attention_heads"]), "ffn": int(t["intermediate_size"]),
        "layers": int(t["num_hidden_layers"]), "dropout": float(t["hidden_dropout_prob"]),
        "share_weights": bool(t.get("share_layer", False)), "layer_norm_eps": float(t["layer_norm_eps"]),
        "n_mels": n_mels, "extract_window_s": sequence_length / MelConfig().frame_rate,
    })
    state: dict[str, torch.Tensor] = {"mel_mean": torch.zeros(n_mels), "mel_std": torch.ones(n_mels)}
    for ours, theirs in EDGE_KEYS.items():
        for p in ("weight", "bias"):
            state[f"{ours}.{p}"] = weights[f"{theirs}.{p}"]
    for i in range(1 if config.share_weights else config.layers):
        pre = f"encoder.layer.{i}."
        for p in ("weight", "bias"):
            state[f"encoder.layers.{i}.attn.qkv.{p}"] = torch.cat([weights[f"{pre}attention.self.{n}.{p}"] for n in QKV])
            for ours, theirs in LAYER_KEYS.items():
                state[f"encoder.layers.{i}.{ours}.{p}"] = weights[f"{pre}{theirs}.{p}"]
    head = states.get("SpecHead") or {}
    for ours, theirs in HEAD_KEYS.items():
        for p in ("weight", "bias"):
            if f"{theirs}.{p}" in head:
                state[f"{ours}.{p}"] = head[f"{theirs}.{p}"]
    if "audio" not in upstream_config:
        raise MelbenchError(f"{path}: the checkpoint names no front-end (Upstream_Config.audio); melbench "
                            "reads s3prl checkpoints with on-the-fly features")
    return config, state, upstream_config["audio"]


def transformer_to_s3prl(model: torch.nn.Module) -> dict[str, Any]:
    """An s3prl checkpoint dict of a melbench reconstruction model.

    melbench normalises log-Mel frames with the corpus statistics inside the model; they are
    folded into s3prl's input projection (W / std, b - W mean / std), so s3prl's
    `PretrainedTransformer` takes melbench's raw log-Mel frames (`benchmark.logmel`) as input.
    The config has no `audio` section: s3prl has no front-end equal to melbench's log-Mel.

    Args:
        model: a `MaskedReconstruction`.

    Returns:
        `{"Transformer", "SpecHead", "Config", "Upstream_Config"}`, for `torch.save`.

    Raises:
        MelbenchError: the model has convolutional positions, which s3prl's transformer lacks.
    """
    config, state = model.config, {k: v.detach().clone() for k, v in model.state_dict().items()}
    if config.positions != "sinusoidal":
        raise MelbenchError(f"positions={config.positions}: s3prl's transformer adds sinusoidal positions only, so "
                            f"this model has no s3prl checkpoint format")
    scale = 1.0 / state["mel_std"]
    w = state["embed.proj.weight"] * scale[None, :]  # (hidden, n_mels)
    transformer = {
        "input_representations.spec_transform.weight": w,
        "input_representations.spec_transform.bias": state["embed.proj.bias"] - w @ state["mel_mean"],
        "input_representations.LayerNorm.weight": state["embed.norm.weight"],
        "input_representations.LayerNorm.bias": state["embed.norm.bias"],
    }
    for i in range(config.layers):  # shared weights (ALBERT) are repeated, as s3prl's ModuleList holds them
        src = f"encoder.layers.{0 if config.share_weights else i}."
        for p in ("weight", "bias"):
            for n, part in zip(QKV, state[f"{src}attn.qkv.{p}"].chunk(3)):
                transformer[f"encoder.layer.{i}.attention.self.{n}.{p}"] = part.clone()
            for ours, theirs in LAYER_KEYS.items():
                transformer[f"encoder.layer.{i}.{theirs}.{p}"] = state[f"{src}{ours}.{p}"]
    head = {f"{theirs}.{p}": state[f"{ours}.{p}"] for ours, theirs in HEAD_KEYS.items() for p in ("weight", "bias")}
    return {"Transformer": transformer, "SpecHead": head, "Config": {},
            "Upstream_Config": {"transformer": {**s3prl_config(config), "input_dim": config.n_mels},
                                # s3prl cuts long inputs as `extract_window_s` does, on the same 100 Hz frames
                                "task": {"sequence_length": round(config.extract_window_s * MelConfig().frame_rate)}}}


GRU_PARAMS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def apc_from_s3prl(path: str | Path, spec: Any) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """A melbench APC config and weights from an s3prl APC checkpoint (`config`, `model`).

    s3prl's APC has no input projection (its first GRU reads the frames), so the config turns
    melbench's off; its Kaldi filterbank settings become a `KaldiFrontend` audio section.

    Returns:
        (config, state dict with identity input statistics, the audio section); s3prl never cuts
        a GRU's input, so `extract_window_s` stays 0.
    """
    states = load_s3prl_file(path)
    try:
        paras, audio = dict(states["config"]["model"]["paras"]), dict(states["config"]["data"]["audio"])
        weights = states["model"]
    except (KeyError, TypeError):
        raise MelbenchError(f"{path}: not an s3prl APC checkpoint (expected config.model.paras, "
                            f"config.data.audio and model; got {sorted(states)})") from None
    if paras.get("vq"):
        raise MelbenchError(f"{path}: VQ-APC checkpoints are not supported")
    n_mels = int(audio.pop("feat_dim"))
    if audio.pop("feat_type", "fbank") != "fbank":
        raise MelbenchError(f"{path}: s3prl APC front-end must be fbank")
    audio.pop("decode_wav", None)
    cmvn = bool(audio.pop("cmvn", True))
    config = spec.config("base", {
        "hidden": int(paras["hidden_size"]), "layers": int(paras["num_layers"]), "dropout": float(paras["dropout"]),
        "residual": bool(paras["residual"]), "input_projection": False, "n_mels": n_mels,
    })
    state = {"mel_mean": torch.zeros(n_mels), "mel_std": torch.ones(n_mels),
             "predict.weight": weights["postnet.weight"], "predict.bias": weights["postnet.bias"]}
    for i in range(config.layers):
        for p in GRU_PARAMS:
            state[f"grus.{i}.{p}"] = weights[f"rnn_layers.{i}.{p}"]
    fbank = {"num_mel_bins": n_mels, "window_type": "hamming", **audio}  # s3prl's APC uses Hamming windows
    audio = {"kaldi": {"feat_type": "fbank", "fbank": fbank}, "delta": {"order": 0}, "cmvn": {"use_cmvn": cmvn}}
    return config, state, audio


def apc_to_s3prl(model: torch.nn.Module) -> dict[str, Any]:
    """An s3prl APC checkpoint dict (`config`, `model`) of a melbench APC model.

    The input statistics and melbench's input projection are folded into the first GRU's input
    weights (`W_ih (P x + c) = (W_ih P) x + W_ih c`), so s3prl's `APC` class gives the same GRU
    outputs on melbench's raw log-Mel frames. The config has no `data.audio` section: s3prl has
    no front-end equal to melbench's log-Mel.
    """
    config, state = model.config, {k: v.detach().clone() for k, v in model.state_dict().items()}
    weights = {f"rnn_layers.{i}.{p}": state[f"grus.{i}.{p}"] for i in range(config.layers) for p in GRU_PARAMS}
    proj_w = state["proj.weight"] / state["mel_std"][None, :] if config.input_projection else torch.diag(1 / state["mel_std"])
    proj_b = state["proj.bias"] if config.input_projection else torch.zeros(config.n_mels)
    proj_b = proj_b - proj_w @ state["mel_mean"]  # x -> proj_w x + proj_b, statistics included
    w_ih = weights["rnn_layers.0.weight_ih_l0"]  # (3 H, in)
    weights["rnn_layers.0.weight_ih_l0"] = w_ih @ proj_w  # (3 H, n_mels)
    weights["rnn_layers.0.bias_ih_l0"] = weights["rnn_layers.0.bias_ih_l0"] + w_ih @ proj_b
    weights["postnet.weight"], weights["postnet.bias"] = state["predict.weight"], state["predict.bias"]
    paras = {"hidden_size": config.hidden, "num_layers": config.layers, "dropout": config.dropout,
             "residual": config.residual}
    return {"config": {"model": {"paras": paras}}, "model": weights}


def from_s3prl(path: str | Path, spec: Any) -> tuple[Any, dict[str, torch.Tensor], torch.nn.Module]:
    """Config (its `extract_window_s` from the checkpoint's `task.sequence_length`), weights and
    front-end of a melbench model from an s3prl checkpoint of its family."""
    if spec.name not in S3PRL_FAMILIES:
        raise MelbenchError(f"{path}: melbench reads s3prl checkpoints for {', '.join(S3PRL_FAMILIES)}, not {spec.name}")
    read = apc_from_s3prl if spec.name == "apc" else transformer_from_s3prl
    try:
        config, state, audio = read(path, spec)
    except KeyError as err:  # a weight or setting its config calls for is not in the file
        raise MelbenchError(f"{path}: the checkpoint lacks {err.args[0]!r}, which its config calls for") from None
    return config, state, s3prl_frontend(audio, where=str(path))


def to_s3prl(model: torch.nn.Module, name: str) -> dict[str, Any]:
    """A melbench model of family `name` as an s3prl checkpoint dict (see the two writers)."""
    if name == "apc":
        return apc_to_s3prl(model)
    if name in TRANSFORMER_FAMILIES:
        return transformer_to_s3prl(model)
    raise MelbenchError(f"{name}: no s3prl checkpoint format (only {', '.join(S3PRL_FAMILIES)})")
