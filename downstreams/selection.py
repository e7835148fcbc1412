"""Probe hyper-parameters chosen on the validation split, from one grid shared by every upstream.

For the linear probe the L2 strengths are visited from the strongest to the weakest, each fit
warm-started from the previous solution (a regularisation path: the strongest penalty's
solution is near zero, and each next one is near the last), so a whole grid costs little more
than one fit; the path stops once `GRID_PATIENCE` weaker penalties in a row have not beaten
the best validation score (past the best, the probe only overfits more). The MLP trains afresh for every (learning rate, L2) pair. The setting with the
best validation score wins (ties: the lower validation loss, then the stronger penalty); the
test split is never seen here.

Which of an upstream's layers the probe reads is part of the grid (`ProbeGrid.layer_choice`):
by default every layer is probed alone, each with its own path, and the (layer, setting) with
the best validation score wins. The alternative, one probe over a softmax-weighted sum of the
layers learned with its head (SUPERB's weighting), is what melbench used before: fitted full
batch by L-BFGS its weights settle on one layer (over 90% of the weighted probes of the kept
runs put more than 0.95 on a single layer), the one that fits the labelled rows best, which on
validation was often not the best layer (docs/probes.md).

A linear probe small enough for one thread (`one_thread_if_small`) walks its layers' paths side
by side, one per core: each path is a short L-BFGS run whose matmuls release the GIL, and a
path's result does not depend on the others, so the selection is the same, only sooner.
"""

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from downstreams.probes import (
    FittedProbe, Probe, ProbeConfig, Standardised, fit_adam, fit_lbfgs, mean_loss, one_thread_if_small, target,
)

GRID_PATIENCE = 2  # weaker L2 strengths without a better validation score before the path stops
# training floats (all layers) below which the layers' paths run one after another: a path
# that small is bound by Python's per-step overhead, so threads gain nothing (docs/probes.md, "Speed")
SIDE_BY_SIDE_MIN_FLOATS = 300_000
_SEED_LOCK = threading.Lock()  # the global RNG: seeding and initialising a path's model is one step
LAYER_CHOICES = ("validation", "weighted")  # tasks.yaml `layer_choice`

# validation score of (labels, scores); higher is better (the task's headline metric)
ScoreFn = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class ProbeGrid:
    """The candidate settings.

    Attributes:
        l2: L2 strengths (`ProbeConfig.l2`).
        lr: MLP learning rates (the linear probe's L-BFGS has none).
        layer_choice: for a probe whose `ProbeConfig.layer` is None: "validation" probes each
            layer alone and keeps the best on validation; "weighted" fits one probe over a
            learned softmax-weighted sum of the layers.
    """

    l2: tuple[float, ...]
    lr: tuple[float, ...] = (3e-3,)
    layer_choice: str = "validation"

    def record(self) -> dict[str, Any]:
        """The grid as runs.jsonl records it. The weighted sum was the only probe before the
        layer became a choice, so it is recorded as it was then (no `layer_choice` key), and a
        run with `layer_choice: weighted` finds those records current.

        Returns:
            The grid's fields as a dict, without `layer_choice` when it is "weighted".
        """
        fields = asdict(self)
        if self.layer_choice == "weighted":
            del fields["layer_choice"]
        return fields


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


def _score(model: Probe, x_valid: np.ndarray, y_valid: np.ndarray, multilabel: bool, score_fn: ScoreFn) -> float:
    with torch.no_grad():
        model.eval()
        logits = model(torch.from_numpy(x_valid))
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
    side_by_side: bool = True,
) -> Selection:
    """Fit a probe at every grid point and keep the one that scores best on validation.

    Args:
        x_train: `(rows, layers, dim)` training features.
        y_train: `(rows,)` class indices, or `(rows, classes)` multi-hot.
        x_valid: validation features, same layout.
        y_valid: validation labels.
        n_classes: number of classes or tags.
        multilabel: sigmoid/BCE instead of softmax/cross-entropy.
        config: everything but the grid's fields (`l2`, and `lr` for the MLP); a `layer` given
            here is probed alone, None leaves the layers to `grid.layer_choice`.
        grid: the candidates.
        score_fn: validation score (higher is better).
        seed: initialisation and shuffling seed.
        side_by_side: walk the layers' paths in threads where that pays (False: one after
            another, the reference `melbench bench` times it against; the result is the same).

    Returns:
        The selection; `config.layer` is the layer read (None for the weighted sum), and each
        curve point of a layer choice names its `layer`.
    """
    if not grid.l2 or (config.kind == "mlp" and not grid.lr):
        raise ValueError("the probe grid needs at least one value of each field")
    if grid.layer_choice not in LAYER_CHOICES:
        raise ValueError(f"layer_choice must be one of {LAYER_CHOICES}, got {grid.layer_choice!r}")
    n_layers = x_train.shape[1]
    if config.layer is not None:
        layers: list[int | None] = [config.layer]
    else:
        layers = list(range(n_layers)) if grid.layer_choice == "validation" and n_layers > 1 else [None]
    threads = one_thread_if_small(x_train)
    try:
        data = Standardised(x_train, x_valid)

        def walk(layer: int | None) -> tuple[list[dict], tuple]:
            # a layer alone is fitted on its own contiguous rows, so the passes over the rows
            # cost one layer's floats, not all of them
            part = data if layer is None else data.only_layer(layer)
            path_config = replace(config, layer=None if layer is None else 0)
            return _walk(part, y_train, y_valid, n_classes, multilabel, path_config, grid, score_fn, seed)

        workers = _side_by_side(threads, config, len(layers), x_train) if side_by_side else 1
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                walks = list(pool.map(walk, layers))  # in layer order, as one after another
        else:
            walks = [walk(layer) for layer in layers]
        curve, best = [], None
        for layer, (points, found) in zip(layers, walks):
            for point in points:
                curve.append({**point, "layer": layer} if len(layers) > 1 else point)
            if best is None or found[0] > best[0]:  # strict: on a tie the lower layer stays
                best = (*found, layer)
        (score, _), chosen, state, epochs, valid_loss, layer = best
        model = Probe(n_layers, x_train.shape[2], n_classes, replace(config, layer=layer))
        model.load_state_dict(state)  # a one-layer model's head is the same head reading `layer`
        probe = FittedProbe(model, data.mean, data.std, multilabel, epochs, valid_loss)
        at_edge = chosen.l2 in (min(grid.l2), max(grid.l2)) and len(grid.l2) > 1
        return Selection(probe, replace(chosen, layer=layer), curve, at_edge, round(score, 6))
    finally:
        if threads is not None:
            torch.set_num_threads(threads)


def _side_by_side(threads: int | None, config: ProbeConfig, n_paths: int, x_train: np.ndarray) -> int:
    """How many layer paths to walk at once: one per core torch had (`threads`, the count
    `one_thread_if_small` saved) for a linear probe on one thread with several layers and at
    least `SIDE_BY_SIDE_MIN_FLOATS`; else 1. Larger probes keep torch's threads inside each
    matmul (their result depends on the thread count), and the MLP's dropout draws from the
    global generator, which paths side by side would share."""
    if threads is None or config.kind != "linear" or n_paths < 2 or x_train.size < SIDE_BY_SIDE_MIN_FLOATS:
        return 1
    return min(threads, n_paths)


def _walk(data: Standardised, y_train: np.ndarray, y_valid: np.ndarray, n_classes: int, multilabel: bool,
          config: ProbeConfig, grid: ProbeGrid, score_fn: ScoreFn, seed: int) -> tuple[list[dict], tuple]:
    """The grid for one reading of the layers: curve points, and the best point's
    `(rank, config, state, epochs, valid_loss)` (rank = (validation score, -validation loss))."""
    with _SEED_LOCK:
        torch.manual_seed(seed)
        model = Probe(data.train.shape[1], data.train.shape[2], n_classes, config)
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
        score = _score(model, data.valid, y_valid, multilabel, score_fn)
        point = {"l2": l2, "valid_score": round(score, 6), "valid_loss": round(valid_loss, 6), "epochs": epochs}
        curve.append({**point, "lr": lr} if config.kind == "mlp" else point)
        # strict improvement only: on a tie the earlier point (the stronger penalty) stays
        rank = (score, -valid_loss)
        if best is None or rank > best[0]:
            best, since_best = (rank, cfg, copy.deepcopy(model.state_dict()), epochs, valid_loss), 0
        else:
            since_best += 1
    return curve, best


def train_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, n_classes: int,
    multilabel: bool, config: ProbeConfig, seed: int,
) -> FittedProbe:
    """Fit one probe at the fixed hyper-parameters of `config` (over `config.layer`, or the
    weighted sum of the layers when it is None): `select_probe` over a one-point grid (the
    validation split then only serves the MLP's early stopping).

    Returns:
        The fitted probe.
    """
    grid = ProbeGrid(l2=(config.l2,), lr=(config.lr,), layer_choice="weighted")
    return select_probe(x_train, y_train, x_valid, y_valid, n_classes, multilabel, config, grid,
                        lambda y, scores: 0.0, seed).probe
