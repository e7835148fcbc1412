"""Probes on frozen features: linear or one-hidden-layer MLP, over one layer or a learned
softmax-weighted sum of layers (as SUPERB), with their hyper-parameters (and, by default, the
layer) chosen on the validation split (`downstreams.selection`).

Features are standardised with statistics of the training subset only. The linear probe is
L2-regularised logistic regression (softmax, or one sigmoid per tag) fitted full-batch by
L-BFGS, which has no learning rate or epoch count to tune; the MLP trains with Adam and early
stopping on the validation loss. The test split plays no part in training or selection.
"""

import copy
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
        layer: which hidden layer to probe; None: a softmax-weighted sum of all layers in a
            `Probe`, and in `select_probe` whatever its grid's `layer_choice` says (by default
            each layer alone, the best on validation kept).
        l2: L2 strength: the objective is the mean loss + l2 / 2 * (sum of squared head
            weights; biases and layer weights are not penalised).
        lr: Adam learning rate (mlp only: L-BFGS needs none).
        lbfgs_iters: L-BFGS iterations (linear only; warm starts along a grid need fewer).
        hidden_dim: MLP width.
        batch_size: MLP rows per step.
        max_epochs: MLP upper bound on passes over the training rows.
        max_steps: MLP upper bound on optimiser steps (bounds the time on large frame sets).
        patience: MLP epochs without a better validation loss before stopping.
        dropout: MLP dropout.
    """

    kind: str = "linear"
    layer: int | None = None
    l2: float = 1e-3
    lr: float = 3e-3
    lbfgs_iters: int = 100
    hidden_dim: int = 256
    batch_size: int = 256
    max_epochs: int = 500
    max_steps: int = 3000
    patience: int = 20
    dropout: float = 0.1


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
            # zeros: the L2 path starts at its strongest penalty, whose solution is near zero
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
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

    def penalty(self) -> torch.Tensor:
        """Sum of squared head weights (not biases): what the L2 strength multiplies."""
        return sum((m.weight ** 2).sum() for m in self.head.modules() if isinstance(m, nn.Linear))

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
    epochs: int  # MLP epochs, or L-BFGS iterations
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


def target(y: np.ndarray, multilabel: bool) -> torch.Tensor:
    """Labels as the tensor the loss takes: float multi-hot, or int64 class indices."""
    return torch.from_numpy(y.astype(np.float32)) if multilabel else torch.from_numpy(y.astype(np.int64))


@torch.no_grad()
def mean_loss(model: Probe, x: np.ndarray, y: np.ndarray, multilabel: bool, batch_size: int = 4096) -> float:
    """Mean unpenalised loss of `model` on standardised rows `x`."""
    model.eval()
    loss_fn, total = _loss_fn(multilabel), 0.0
    for start in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[start : start + batch_size])
        total += float(loss_fn(model(xb), target(y[start : start + batch_size], multilabel))) * len(xb)
    return total / max(1, len(x))


STD_FLOOR = 1e-5  # added to every standard deviation: a constant feature divides by this, not 0


class Standardised:
    """Training and validation rows standardised with the training subset's statistics."""

    def __init__(self, x_train: np.ndarray, x_valid: np.ndarray):
        self.mean = x_train.mean(0, dtype=np.float64).astype(np.float32)  # (L, D), training subset only
        self.std = x_train.std(0, dtype=np.float64).astype(np.float32) + STD_FLOOR
        self.train = ((x_train - self.mean) / self.std).astype(np.float32)
        self.valid = ((x_valid - self.mean) / self.std).astype(np.float32)

    def only_layer(self, layer: int) -> "Standardised":
        """The same rows with `layer` alone: `(rows, 1, dim)`, contiguous, statistics sliced alike."""
        part = copy.copy(self)
        part.mean, part.std = self.mean[layer : layer + 1], self.std[layer : layer + 1]
        part.train = np.ascontiguousarray(self.train[:, layer : layer + 1])
        part.valid = np.ascontiguousarray(self.valid[:, layer : layer + 1])
        return part


def one_thread_if_small(x_train: np.ndarray) -> int | None:
    """Small probes run faster on one thread (no fork/join per tiny matmul) and do not fight
    other work for the cores; large frame-level sets keep torch's default.

    Returns:
        The previous thread count to restore, or None if nothing changed.
    """
    if x_train[0].size * len(x_train) >= SMALL_PROBLEM:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return threads


def fit_lbfgs(model: Probe, xt: torch.Tensor, yt: torch.Tensor, multilabel: bool, config: ProbeConfig) -> int:
    """Minimise mean loss + l2 / 2 * penalty over the full batch, from the model's current weights.

    Args:
        model: a linear probe (its weights are the warm start).
        xt: `(rows, layers, dim)` standardised training rows.
        yt: their targets.
        multilabel: sigmoid/BCE instead of softmax/cross-entropy.
        config: gives `l2` and `lbfgs_iters`.

    Returns:
        The L-BFGS iterations run.
    """
    model.train()
    loss_fn = _loss_fn(multilabel)
    optimiser = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=config.lbfgs_iters, history_size=10,
                                  tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(model(xt), yt) + 0.5 * config.l2 * model.penalty()
        loss.backward()
        return loss

    optimiser.step(closure)
    return int(optimiser.state[optimiser.param_groups[0]["params"][0]].get("n_iter", 0))


def fit_adam(model: Probe, data: Standardised, y_train: np.ndarray, y_valid: np.ndarray, multilabel: bool,
             config: ProbeConfig, seed: int) -> tuple[int, float]:
    """Mini-batch Adam on mean loss + l2 / 2 * penalty, keeping the best validation-loss epoch.

    Returns:
        (epochs run, best validation loss); the model holds the best epoch's weights.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = _loss_fn(multilabel)
    generator = torch.Generator().manual_seed(seed)
    best_loss, best_state, bad_epochs, epoch, steps = float("inf"), None, 0, 0, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        for idx in torch.randperm(len(data.train), generator=generator).split(config.batch_size):
            idx_np = idx.numpy()
            loss = loss_fn(model(torch.from_numpy(data.train[idx_np])), target(y_train[idx_np], multilabel))
            loss = loss + 0.5 * config.l2 * model.penalty()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        valid_loss = mean_loss(model, data.valid, y_valid, multilabel)
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
    return epoch, best_loss
