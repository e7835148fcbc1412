"""Pretraining checkpoints: safetensors only (no pickle), each file written atomically.

A checkpoint folder holds
  * `train_state.safetensors`: model (`model.*`) and AdamW (`optim.<i>.<key>`) tensors, with
    the JSON record (config, step, validation history, optimiser hyper-parameters) in the
    safetensors metadata: one file, so a kill can never pair weights with the wrong optimiser;
  * `model.safetensors` + `config.json`: what `load(checkpoint=...)` reads.
Both safetensors files carry the sha256 of their tensors in their metadata (`sha256`), so a
file altered after it was written is refused instead of silently loaded.
The learning-rate schedule and all randomness are pure functions of the step, so the step is
the only scheduler/RNG state needed to resume.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from benchmark.atomic import atomic_write
from benchmark.errors import MelbenchError

STATE_FILE = "train_state.safetensors"
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A digest of names, dtypes, shapes and bytes of `tensors` (order-independent)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically, with the tensors' sha256 in its metadata."""
    with atomic_write(path) as f:
        f.write(save(tensors, metadata={**(metadata or {}), "sha256": tensors_sha256(tensors)}))


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file (never a pickle) and verify its `sha256` metadata when present.

    Args:
        path: the file.

    Returns:
        The tensors and the metadata.

    Raises:
        MelbenchError: the file is missing, not a safetensors file, or its tensors do not match
            the digest written with them.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise MelbenchError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise MelbenchError(f"{path}: not a readable safetensors file ({err}); melbench never loads pickles") from None
    expected = metadata.get("sha256")
    got = tensors_sha256(tensors) if expected is not None else None
    if got != expected:
        raise MelbenchError(f"{path}: its tensors do not match the sha256 written with them "
                            f"(expected {expected[:12]}..., got {got[:12]}...): "
                            "the file was modified or damaged; refusing to load it")
    return tensors, metadata


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
    write_tensors(folder / STATE_FILE, tensors, meta)
    write_tensors(folder / MODEL_FILE, weights)
    # config.json last: `melbench run` trusts its step, so it must never be ahead of the weights
    with atomic_write(folder / CONFIG_FILE, "w") as f:
        json.dump(record, f, indent=2)


def save_snapshot(folder: Path, model: torch.nn.Module, record: dict[str, Any]) -> None:
    """Write a loadable (not resumable) checkpoint: `model.safetensors`, then `config.json`.

    Args:
        folder: created if needed.
        model: the unwrapped model.
        record: its `config.json` facts.
    """
    folder = Path(folder)
    write_tensors(folder / MODEL_FILE, _contiguous(model.state_dict()))
    with atomic_write(folder / CONFIG_FILE, "w") as f:
        json.dump(record, f, indent=2)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters (shared weights counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def finished_record(folder: Path) -> dict[str, Any] | None:
    """A checkpoint folder's `config.json` record if its pretraining ran to its last step, else
    None (no checkpoint yet, or a run killed before the end: resume it)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("step", 0) < record.get("total_steps", 0):
        return None
    return record


def read_record(folder: Path) -> dict[str, Any]:
    """The JSON record inside `train_state.safetensors`."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise MelbenchError(f"{path}: no training state to resume from")
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["record"])
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise MelbenchError(f"{path}: not a melbench training state ({err!r})") from None


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimiser from `train_state.safetensors`.

    Args:
        folder: the checkpoint folder.
        model: the unwrapped model, built from the record's config.
        optimizer: a fresh AdamW over `model.parameters()`.

    Returns:
        The record.
    """
    tensors, metadata = read_tensors(Path(folder) / STATE_FILE)
    record = json.loads(metadata["record"])
    param_groups = json.loads(metadata["param_groups"])
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            # clone: fresh, aligned storage, so vectorised kernels round exactly as in an uninterrupted run
            state.setdefault(int(index), {})[key] = value.clone()
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    return record
