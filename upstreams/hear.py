"""Any HEAR-API module as an upstream: `melbench run --upstreams hear:MODULE [--set weights=PATH]`.

The module (importable by dotted path) provides `load_model(model_file_path="")`,
`get_timestamp_embeddings(audio, model)` and `get_scene_embeddings(audio, model)`; its model
declares `sample_rate` and `timestamp_embedding_size`. The frame rate is read off the
module's own timestamps (on one second of silence), and each clip's frames are placed at the
timestamps the module gives for it (an offset first timestamp included), so the harness can
align frame labels.
Clips go to the module one at a time: HEAR batches hold sounds of one length, and padding a
clip to its neighbour's length could change its frames.
"""

import importlib
from types import ModuleType
from typing import Any

import torch

from benchmark.errors import MelbenchError
from benchmark.upstream import Upstream

ARGUMENT = "target"  # `hear:MODULE` fills `target`
CODE_OPTIONS = ("target",)  # the module's code is part of the features' cache key
FILE_OPTIONS = ("weights",)  # the weights file's content hash is part of the features' cache key
# The contract tests wrap melbench's own HEAR export of the Mel baseline: a full round trip.
CHECK_OPTIONS = {"target": "benchmark.hear"}

REQUIRED = ("load_model", "get_timestamp_embeddings", "get_scene_embeddings")


class HearUpstream(Upstream):
    """A HEAR module's timestamp embeddings behind the melbench contract.

    Args:
        module: the imported HEAR module.
        model: what its `load_model` returned.
        target: the module path (for messages).
    """

    def __init__(self, module: ModuleType, model: Any, target: str):
        self.module, self.model, self.target = module, model, target
        for fact in ("sample_rate", "timestamp_embedding_size"):
            if not isinstance(getattr(model, fact, None), int):
                raise MelbenchError(f"HEAR module {target}: its model declares no integer {fact}")
        self.sample_rate = model.sample_rate
        self.feature_dim = model.timestamp_embedding_size
        self.device = next((p.device for p in model.parameters()), torch.device("cpu")) \
            if isinstance(model, torch.nn.Module) else torch.device("cpu")
        _, timestamps_ms = self._embed(torch.zeros(self.sample_rate))
        steps_ms = torch.diff(timestamps_ms.double())
        if len(steps_ms) < 1 or not bool((steps_ms > 0).all()):
            raise MelbenchError(f"HEAR module {target}: timestamps of 1 s of audio are not increasing")
        self.frame_rate = 1000.0 / float(steps_ms.mean())

    def _on_grid(self, emb: torch.Tensor, timestamps_ms: torch.Tensor, n_samples: int) -> torch.Tensor:
        """The module's frames placed at their own timestamps on melbench's grid: frame i at
        `i / frame_rate` s, `1 + duration * frame_rate` frames (centred framing), each taking
        the module's frame nearest to it in time. A module whose timestamps are `i / frame_rate`
        keeps its frames as they are; one whose frames start later (say, at the centre of its
        first window) is not offset."""
        ts = timestamps_ms.double()
        step_ms = 1000.0 / self.frame_rate
        n = 1 + int(n_samples * self.frame_rate / self.sample_rate + 1e-9)
        grid = torch.arange(n, dtype=torch.float64) * step_ms  # (T_grid,)
        right = torch.searchsorted(ts, grid).clamp(max=len(ts) - 1)
        left = (right - 1).clamp(min=0)
        nearest = torch.where((grid - ts[left]).abs() <= (ts[right] - grid).abs(), left, right)
        return emb[nearest]  # (T_grid, D)

    def _embed(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            emb, ts = self.module.get_timestamp_embeddings(wave[None].to(self.device), self.model)
        return emb[0].float().cpu(), ts[0].cpu()  # (T, D), (T,)

    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        """`(n_frames, timestamp_embedding_size)`; HEAR exposes one layer, so `layers` adds a
        leading axis of 1."""
        emb, timestamps_ms = self._embed(wave)
        emb = self._on_grid(emb, timestamps_ms, wave.shape[-1])
        return emb[None] if layers else emb


def load(target: str, weights: str = "", device: str = "cpu") -> HearUpstream:
    """Import a HEAR module and load its model.

    Args:
        target: dotted module path (`hearbaseline`, `benchmark.hear`, `mypkg.mymodel`).
        weights: the `model_file_path` given to its `load_model` (empty: its default).
        device: where the model runs.

    Returns:
        The upstream.
    """
    try:
        module = importlib.import_module(target)
    except ImportError as err:
        raise MelbenchError(f"HEAR module {target!r} cannot be imported ({err})") from None
    missing = [fn for fn in REQUIRED if not callable(getattr(module, fn, None))]
    if missing:
        raise MelbenchError(f"HEAR module {target!r} lacks {', '.join(missing)} (the HEAR API needs {', '.join(REQUIRED)})")
    try:
        model = module.load_model(weights) if weights else module.load_model()
    except (OSError, RuntimeError, ValueError, KeyError) as err:  # e.g. a missing or wrong weights file
        what = f"load_model({weights!r})" if weights else "load_model()"
        raise MelbenchError(f"HEAR module {target}: {what} failed ({type(err).__name__}: {err})") from None
    if isinstance(model, torch.nn.Module):
        model = model.to(device).eval()
    return HearUpstream(module, model, target)
