"""Probes on frozen features: linear or one-hidden-layer MLP, over one layer or a learned
softmax-weighted sum of layers (as SUPERB).

Features are standardised with statistics of the training subset only. Training stops early
on the validation loss, and the weights of the best validation epoch are kept: the test split
plays no part in training or model selection.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PROBE_KINDS = ("linear", "mlp")
SMALL_PROBLEM = 4_000_000  # training-set floats below which a probe trains on one thread


@dataclass(frozen=True)
class ProbeConfig:
    """Probe hyper-parameters.

    Attributes:
        kind: "linear" or "mlp" (one hidden layer, ReLU, dropout).
        layer: which hidden layer to probe; None learns a softmax-weighted sum of all layers.
        hidden_dim: MLP width.
        lr: Adam learning rate.
        weight_decay: L2 penalty (AdamW).
        batch_size: rows per step.
        max_epochs: upper bound on passes over the training rows.
        max_steps: upper bound on optimiser steps (bounds the time on large frame-level sets).
        patience: epochs without a better validation loss before stopping.
        dropout: MLP dropout.
        max_valid_rows: validation rows scored after each epoch for early stopping (a fixed
            random subset when there are more: frame-level sets have ~10^5 rows).
    """

    kind: str = "linear"
    layer: int | None = None
    hidden_dim: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 500
    max_steps: int = 3000
    patience: int = 20
    dropout: float = 0.1
    max_valid_rows: int = 20000


class Probe(nn.Module):
    """Layer selection or weighting, then a linear or MLP head.

    Args:
        n_layers: hidden layers in the input.
        in_dim: features per layer.
        n_classes: output size.
        config: the probe's configuration.
    """

    def __init__(self, n_layers: int, in_dim: int, n_classes: int, config: ProbeConfig):
        super().__init__()
        self.layer = config.layer
        self.layer_logits = nn.Parameter(torch.zeros(n_layers)) if config.layer is None else None
        if config.kind == "linear":
            self.head = nn.Linear(in_dim, n_classes)
        elif config.kind == "mlp":
            self.head = nn.Sequential(
                nn.Linear(in_dim, config.hidden_dim), nn.ReLU(), nn.Dropout(config.dropout),
                nn.Linear(config.hidden_dim, n_classes),
            )
        else:
            raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {config.kind!r}")

    def layer_weights(self) -> np.ndarray | None:
        """The learned softmax weights over layers, or None for a single-layer probe."""
        if self.layer_logits is None:
            return None
        return torch.softmax(self.layer_logits.detach(), 0).numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, layers, dim)` standardised features -> `(batch, classes)` logits."""
        if self.layer_logits is None:
            x = x[:, self.layer]  # (B, D)
        else:
            x = (torch.softmax(self.layer_logits, 0)[None, :, None] * x).sum(1)  # (B, L, D) -> (B, D)
        return self.head(x)


@dataclass
class FittedProbe:
    """A trained probe with the training-subset statistics it standardises with."""

    model: Probe
    mean: np.ndarray  # (layers, dim)
    std: np.ndarray  # (layers, dim)
    multilabel: bool
    epochs: int
    best_valid_loss: float

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Class probabilities (softmax) or tag probabilities (sigmoid).

        Args:
            x: `(rows, layers, dim)` features.
            batch_size: rows per forward pass.

        Returns:
            `(rows, classes)` float32 scores.
        """
        self.model.eval()
        out = []
        for start in range(0, len(x), batch_size):
            xb = torch.from_numpy(((x[start : start + batch_size] - self.mean) / self.std).astype(np.float32))
            logits = self.model(xb)
            out.append((torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, 1)).numpy())
        return np.concatenate(out)


def _loss_fn(multilabel: bool) -> nn.Module:
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


def _target(y: np.ndarray, multilabel: bool) -> torch.Tensor:
    return torch.from_numpy(y.astype(np.float32)) if multilabel else torch.from_numpy(y.astype(np.int64))


@torch.no_grad()
def _mean_loss(model: Probe, x: np.ndarray, y: np.ndarray, multilabel: bool, batch_size: int) -> float:
    model.eval()
    loss_fn, total = _loss_fn(multilabel), 0.0
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start : start + batch_size])
        total += float(loss_fn(model(xb), _target(y[start : start + batch_size], multilabel))) * len(xb)
    return total / max(1, len(x))


def train_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    n_classes: int,
    multilabel: bool,
    config: ProbeConfig,
    seed: int,
) -> FittedProbe:
    """Fit a probe with early stopping on the validation loss.

    Args:
        x_train: `(rows, layers, dim)` training features.
        y_train: `(rows,)` class indices, or `(rows, classes)` multi-hot for multilabel.
        x_valid: validation features, same layout.
        y_valid: validation labels.
        n_classes: number of classes or tags.
        multilabel: sigmoid/BCE instead of softmax/cross-entropy.
        config: hyper-parameters.
        seed: initialisation and shuffling seed.

    Returns:
        The probe with the weights of its best validation epoch.
    """
    # Small probes run faster on one thread (no fork/join per tiny matmul) and do not fight
    # other work for the cores; large frame-level sets keep torch's default.
    threads = torch.get_num_threads()
    if x_train[0].size * len(x_train) < SMALL_PROBLEM:
        torch.set_num_threads(1)
    try:
        return _train(x_train, y_train, x_valid, y_valid, n_classes, multilabel, config, seed)
    finally:
        torch.set_num_threads(threads)


def _train(
    x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
    n_classes: int, multilabel: bool, config: ProbeConfig, seed: int,
) -> FittedProbe:
    torch.manual_seed(seed)
    mean = x_train.mean(0, dtype=np.float64).astype(np.float32)  # (L, D), training subset only
    std = x_train.std(0, dtype=np.float64).astype(np.float32) + 1e-5
    xt = ((x_train - mean) / std).astype(np.float32)
    if len(x_valid) > config.max_valid_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x_valid), config.max_valid_rows, replace=False))
        x_valid, y_valid = x_valid[keep], y_valid[keep]
    xv = ((x_valid - mean) / std).astype(np.float32)
    model = Probe(x_train.shape[1], x_train.shape[2], n_classes, config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = _loss_fn(multilabel)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_state, bad_epochs, epoch, steps = float("inf"), None, 0, 0, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        for idx in torch.randperm(len(xt), generator=generator).split(config.batch_size):
            idx_np = idx.numpy()
            loss = loss_fn(model(torch.from_numpy(xt[idx_np])), _target(y_train[idx_np], multilabel))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        valid_loss = _mean_loss(model, xv, y_valid, multilabel, 4096)
        if valid_loss < best_loss - 1e-6:
            best_loss, bad_epochs = valid_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
        if steps >= config.max_steps:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return FittedProbe(model, mean, std, multilabel, epoch, best_loss)
