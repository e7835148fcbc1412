"""Pretraining checkpoints: safetensors only (no pickle), each file written atomically.

A checkpoint folder holds
  * `train_state.safetensors`: model (`model.*`) and AdamW (`optim.<i>.<key>`) tensors, with
    the JSON record (config, step, validation history, optimiser hyper-parameters) in the
    safetensors metadata: one file, so a kill can never pair weights with the wrong optimiser;
  * `model.safetensors` + `config.json`: what `load(checkpoint=...)` reads.
The learning-rate schedule and all randomness are pure functions of the step, so the step is
the only scheduler/RNG state needed to resume.
"""

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError

STATE_FILE = "train_state.safetensors"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, record: dict[str, Any]) -> None:
    """Write the resumable state, then the loadable model and its config.

    Args:
        folder: the checkpoint folder (created if needed).
        model: the unwrapped model.
        optimizer: its AdamW optimiser.
        record: JSON-serialisable facts (`upstream`, `preset`, `corpus`, `step`, `config`, ...).
    """
    folder = Path(folder)
    weights = _contiguous(model.state_dict())
    opt = optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in weights.items()}
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = {"record": json.dumps(record), "param_groups": json.dumps(opt["param_groups"])}
    with atomic_write(folder / STATE_FILE) as f:
        f.write(save(tensors, metadata=meta))
    with atomic_write(folder / CONFIG_FILE, "w") as f:
        json.dump(record, f, indent=2)
    with atomic_write(folder / MODEL_FILE) as f:
        f.write(save(weights))


def read_record(folder: Path) -> dict[str, Any]:
    """The JSON record inside `train_state.safetensors`."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise MelbenchError(f"{path}: no training state to resume from")
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["record"])


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimiser from `train_state.safetensors`.

    Args:
        folder: the checkpoint folder.
        model: the unwrapped model, built from the record's config.
        optimizer: a fresh AdamW over `model.parameters()`.

    Returns:
        The record.
    """
    path = Path(folder) / STATE_FILE
    record = read_record(folder)
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        param_groups = json.loads(f.metadata()["param_groups"])
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            # clone: fresh, aligned storage, so vectorised kernels round exactly as in an uninterrupted run
            state.setdefault(int(index), {})[key] = value.clone()
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    return record
