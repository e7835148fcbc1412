"""Probe hyper-parameters chosen on the validation split, from one grid shared by every upstream.

For the linear probe the L2 strengths are visited from the strongest to the weakest, each fit
warm-started from the previous solution (a regularisation path: the strongest penalty's
solution is near zero, and each next one is near the last), so a whole grid costs little more
than one fit; the path stops once `GRID_PATIENCE` weaker penalties in a row have not beaten
the best validation score (past the best, the probe only overfits more). The MLP trains afresh for every (learning rate, L2) pair. The setting with the
best validation score wins (ties: the lower validation loss, then the stronger penalty); the
test split is never seen here.
"""

import copy
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from downstreams.probes import (
    FittedProbe, Probe, ProbeConfig, Standardised, fit_adam, fit_lbfgs, mean_loss, one_thread_if_small, target,
)

GRID_PATIENCE = 2  # weaker L2 strengths without a better validation score before the path stops

# validation score of (labels, scores); higher is better (the task's headline metric)
ScoreFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class ProbeGrid:
    """The candidate settings.

    Attributes:
        l2: L2 strengths (`ProbeConfig.l2`).
        lr: MLP learning rates (the linear probe's L-BFGS has none).
    """

    l2: tuple[float, ...]
    lr: tuple[float, ...] = (3e-3,)


@dataclass
class Selection:
    """The chosen probe and how the grid scored on the validation split.

    Attributes:
        probe: the fitted probe at the chosen setting.
        config: the chosen configuration.
        curve: one dict per grid point fitted: `l2`, `lr` (mlp), `valid_score`, `valid_loss`,
            `epochs` (MLP epochs or L-BFGS iterations).
        at_edge: the chosen L2 strength is the grid's smallest or largest.
        score: the chosen probe's validation score.
    """

    probe: FittedProbe
    config: ProbeConfig
    curve: list[dict[str, float]]
    at_edge: bool
    score: float


def _score(model: Probe, data: Standardised, y_valid: np.ndarray, multilabel: bool, score_fn: ScoreFn) -> float:
    with torch.no_grad():
        model.eval()
        logits = model(torch.from_numpy(data.valid))
        scores = torch.sigmoid(logits) if multilabel else torch.softmax(logits, 1)
    value = float(score_fn(y_valid, scores.numpy()))
    return value if np.isfinite(value) else -np.inf


def select_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    n_classes: int,
    multilabel: bool,
    config: ProbeConfig,
    grid: ProbeGrid,
    score_fn: ScoreFn,
    seed: int,
) -> Selection:
    """Fit a probe at every grid point and keep the one that scores best on validation.

    Args:
        x_train: `(rows, layers, dim)` training features.
        y_train: `(rows,)` class indices, or `(rows, classes)` multi-hot.
        x_valid: validation features, same layout.
        y_valid: validation labels.
        n_classes: number of classes or tags.
        multilabel: sigmoid/BCE instead of softmax/cross-entropy.
        config: everything but the grid's fields (`l2`, and `lr` for the MLP).
        grid: the candidates.
        score_fn: validation score (higher is better).
        seed: initialisation and shuffling seed.

    Returns:
        The selection.
    """
    if not grid.l2 or (config.kind == "mlp" and not grid.lr):
        raise ValueError("the probe grid needs at least one value of each field")
    threads = one_thread_if_small(x_train)
    try:
        data = Standardised(x_train, x_valid)
        torch.manual_seed(seed)
        model = Probe(x_train.shape[1], x_train.shape[2], n_classes, config)
        points = [(lr, l2) for lr in (grid.lr if config.kind == "mlp" else (config.lr,))
                  for l2 in sorted(grid.l2, reverse=True)]
        xt, yt = torch.from_numpy(data.train), target(y_train, multilabel)
        initial = copy.deepcopy(model.state_dict())
        curve, best, since_best = [], None, 0
        for lr, l2 in points:
            if config.kind == "linear" and since_best >= GRID_PATIENCE:
                break
            cfg = replace(config, l2=l2, lr=lr)
            if config.kind == "linear":  # warm start: `model` still holds the previous (stronger) solution
                epochs = fit_lbfgs(model, xt, yt, multilabel, cfg)
                valid_loss = mean_loss(model, data.valid, y_valid, multilabel)
            else:  # the same initial weights for every point, so only the setting differs
                model.load_state_dict(initial)
                epochs, valid_loss = fit_adam(model, data, y_train, y_valid, multilabel, cfg, seed)
            score = _score(model, data, y_valid, multilabel, score_fn)
            point = {"l2": l2, "valid_score": round(score, 6), "valid_loss": round(valid_loss, 6), "epochs": epochs}
            curve.append({**point, "lr": lr} if config.kind == "mlp" else point)
            # strict improvement only: on a tie the earlier point (the stronger penalty) stays
            rank = (score, -valid_loss)
            if best is None or rank > best[0]:
                best, since_best = (rank, cfg, copy.deepcopy(model.state_dict()), epochs, valid_loss), 0
            else:
                since_best += 1
        (score, _), chosen, state, epochs, valid_loss = best
        model.load_state_dict(state)
        probe = FittedProbe(model, data.mean, data.std, multilabel, epochs, valid_loss)
        at_edge = chosen.l2 in (min(grid.l2), max(grid.l2)) and len(grid.l2) > 1
        return Selection(probe, chosen, curve, at_edge, round(score, 6))
    finally:
        if threads is not None:
            torch.set_num_threads(threads)


def train_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, n_classes: int,
    multilabel: bool, config: ProbeConfig, seed: int,
) -> FittedProbe:
    """Fit one probe at the fixed hyper-parameters of `config`: `select_probe` over a one-point
    grid (the validation split then only serves the MLP's early stopping).

    Returns:
        The fitted probe.
    """
    grid = ProbeGrid(l2=(config.l2,), lr=(config.lr,))
    return select_probe(x_train, y_train, x_valid, y_valid, n_classes, multilabel, config, grid,
                        lambda y, scores: 0.0, seed).probe
