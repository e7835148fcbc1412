"""melbench upstreams as a HEAR module (the HEAR 2021 API: `load_model`,
`get_timestamp_embeddings`, `get_scene_embeddings`), so HEAR's tools can evaluate them:

    hear-validator benchmark.hear                                      # the log-Mel baseline
    hear-validator benchmark.hear --model ~/.cache/melbench/checkpoints/tera/mix-small

`model_file_path` names what to load: empty for the Mel baseline; a melbench checkpoint folder
(its `config.json` names the upstream); an upstream name; or `NAME:CHECKPOINT`. Timestamp
embeddings are the upstream's frames (its default layer) at their exact centres,
`i * 1000 / frame_rate` ms; scene embeddings are the mean and standard deviation over frames,
as melbench's clip-level probes see them.
"""

import json
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import MelbenchError
from benchmark.registry import BASELINE, available_upstreams, load_upstream
from benchmark.upstream import batch_extract, extract_chunked


class HearModel(torch.nn.Module):
    """A loaded upstream with the attributes HEAR asks for.

    Args:
        upstream: a loaded melbench upstream; its torch modules (if any) become submodules, so
            `.to(device)` moves them.
        name: the upstream's name (for messages).
    """

    def __init__(self, upstream: Any, name: str):
        super().__init__()
        self.upstream, self.name = upstream, name
        self.parts = torch.nn.ModuleList(v for v in vars(upstream).values() if isinstance(v, torch.nn.Module))
        self.sample_rate = int(upstream.sample_rate)
        self.frame_rate = float(upstream.frame_rate)
        self.timestamp_embedding_size = int(upstream.feature_dim)
        self.scene_embedding_size = 2 * int(upstream.feature_dim)

    def _apply(self, fn: Any, recurse: bool = True) -> "HearModel":
        super()._apply(fn, recurse)
        # upstreams that move their inputs to `self.device` follow their weights
        tensors = [*self.parts.parameters(), *self.parts.buffers()]
        if tensors and hasattr(self.upstream, "device"):
            self.upstream.device = tensors[0].device
        return self

    @property
    def device(self) -> torch.device:
        """Where the upstream's weights are (the CPU for weightless upstreams)."""
        return getattr(self.upstream, "device", torch.device("cpu"))


def _resolve(model_file_path: str) -> tuple[str, dict[str, Any]]:
    """(upstream name, load options) for a HEAR `model_file_path` (see the module docstring)."""
    if not model_file_path:
        return BASELINE, {}
    path = Path(model_file_path).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        try:
            name = json.loads((path / "config.json").read_text())["upstream"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise MelbenchError(f"{path / 'config.json'}: not a melbench checkpoint record ({err!r})") from None
        return name, {"checkpoint": str(path)}
    known = available_upstreams()
    name, _, checkpoint = model_file_path.partition(":")
    if name in known:
        return name, ({"checkpoint": checkpoint} if checkpoint else {})
    raise MelbenchError(f"{model_file_path}: expected a melbench checkpoint folder, an upstream name "
                        f"({', '.join(known)}) or NAME:CHECKPOINT")


def load_model(model_file_path: str = "", **options: Any) -> HearModel:
    """Load a melbench upstream as a HEAR model.

    Args:
        model_file_path: what to load (see the module docstring); empty = the Mel baseline.
        **options: extra `load` options of the upstream (e.g. `layer=2`).

    Returns:
        The model, with `sample_rate`, `scene_embedding_size` and `timestamp_embedding_size`.
    """
    name, resolved = _resolve(model_file_path)
    return HearModel(load_upstream(name, {**resolved, **options}), name)


def _check_audio(audio: torch.Tensor, model: HearModel) -> None:
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        shape = tuple(audio.shape) if hasattr(audio, "shape") else type(audio).__name__
        raise MelbenchError(f"HEAR audio: expected a (n_sounds, n_samples) tensor at {model.sample_rate} Hz, got {shape}")


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame embeddings of a batch of equal-length sounds, in one batched call (sounds longer
    than the upstream's `max_input_s` go one by one, in chunks, exactly as melbench extracts).

    Args:
        audio: `(n_sounds, n_samples)` float waves at `model.sample_rate`.
        model: from `load_model`.

    Returns:
        `(n_sounds, n_frames, timestamp_embedding_size)` float32 embeddings and
        `(n_sounds, n_frames)` frame centres in milliseconds, on the audio's device.
    """
    _check_audio(audio, model)
    waves = audio.to(model.device, torch.float32)
    max_input_s = getattr(model.upstream, "max_input_s", None)
    with torch.inference_mode():
        if max_input_s and audio.shape[1] > max_input_s * model.sample_rate:  # in chunks, as melbench extracts
            feats = torch.stack([extract_chunked(model.upstream, w) for w in waves])  # (B, T, D)
        else:
            lengths = torch.full((audio.shape[0],), audio.shape[1])
            feats, _ = batch_extract(model.upstream, waves, lengths)  # (B, T, D)
    n_frames = feats.shape[1]
    # each centre from its index, not by adding rounded hops: no drift over long sounds
    centres_ms = torch.arange(n_frames, dtype=torch.float64) * (1000.0 / model.frame_rate)
    timestamps = centres_ms.to(torch.float32).expand(audio.shape[0], n_frames)  # (B, T)
    return feats.to(audio.device, torch.float32), timestamps.to(audio.device)


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """One embedding per sound: mean and standard deviation of its frame embeddings.

    Args:
        audio: `(n_sounds, n_samples)` float waves at `model.sample_rate`.
        model: from `load_model`.

    Returns:
        `(n_sounds, scene_embedding_size)` float32.
    """
    feats, _ = get_timestamp_embeddings(audio, model)  # (B, T, D)
    return torch.cat([feats.mean(1), feats.std(1, unbiased=False)], dim=1)
