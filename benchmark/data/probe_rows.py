"""Turn a dataset plus cached upstream features into probe rows.

Clip-level tasks read features pooled at extraction (mean and std over frames per layer, one
row per clip); frame-level tasks keep one row per frame, labelled with the segment under the
frame's centre (`i / frame_rate` seconds); frames outside every segment are dropped.
"""

from dataclasses import dataclass

import numpy as np

from benchmark.data.manifest import Dataset, Item


@dataclass
class Rows:
    """Probe inputs for a set of items.

    Attributes:
        x: `(rows, layers, dim)` float32 features.
        y: `(rows,)` class indices, or `(rows, classes)` multi-hot for multilabel tasks.
        unit: `(rows,)` index of the item each row came from (bootstrap unit).
    """

    x: np.ndarray
    y: np.ndarray
    unit: np.ndarray


def frame_labels(item: Item, n_frames: int, frame_rate: float, class_index: dict[str, int]) -> np.ndarray:
    """The class of each frame from the item's segments; -1 where no segment covers it.

    Args:
        item: a frame-level item with `segments`.
        n_frames: frames of the item's features.
        frame_rate: frames per second.
        class_index: label name to index.

    Returns:
        `(n_frames,)` int64.
    """
    centres_s = np.arange(n_frames) / frame_rate
    labels = np.full(n_frames, -1, dtype=np.int64)
    for start_s, end_s, label in item.segments:
        labels[(centres_s >= start_s) & (centres_s < end_s)] = class_index.get(label, -1)
    return labels


def _row_picks(dataset: Dataset, present: list[Item], feats: dict[str, np.ndarray], frame_rate: float,
               class_index: dict[str, int]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Per item: the indices of its labelled frames (`[0]` for a clip) and its frame labels."""
    if dataset.level != "frame":
        return [np.zeros(1, np.int64) for _ in present], [None] * len(present)
    labels = [frame_labels(item, feats[item.id].shape[1], frame_rate, class_index) for item in present]
    return [np.flatnonzero(lab >= 0) for lab in labels], labels


def build_rows(dataset: Dataset, items: list[Item], feats: dict[str, np.ndarray], frame_rate: float,
               max_rows: int | None = None, seed: int = 0) -> Rows:
    """Probe rows for `items` whose features are in `feats` (missing items are skipped).

    Args:
        dataset: gives the level, label type and classes.
        items: the items wanted.
        feats: item id to `(layers, frames, dim)` features (frame level) or `(layers, 2 * dim)`
            pooled features (clip level).
        frame_rate: the upstream's frames per second.
        max_rows: keep at most this many rows, a uniform random sample of all of them (a
            frame-level set has ~100 rows per second of audio; neighbouring frames are
            nearly copies, so a sample bounds memory and time at little cost). None keeps all.
        seed: the sample's seed.

    Returns:
        The rows, in item order.
    """
    class_index = {c: i for i, c in enumerate(dataset.classes)}
    units = [u for u, item in enumerate(items) if item.id in feats]
    present = [items[u] for u in units]
    if not present:
        raise ValueError("no items with features")
    picks, labels = _row_picks(dataset, present, feats, frame_rate, class_index)
    counts = np.array([len(p) for p in picks])
    if max_rows is not None and counts.sum() > max_rows:
        chosen = np.zeros(int(counts.sum()), bool)
        chosen[np.random.default_rng(seed).choice(len(chosen), max_rows, replace=False)] = True
        bounds = np.r_[0, np.cumsum(counts)]
        picks = [p[chosen[a:b]] for p, a, b in zip(picks, bounds[:-1], bounds[1:])]
        counts = np.array([len(p) for p in picks])
    first = feats[present[0].id]
    n_layers, dim = first.shape[0], first.shape[-1]
    x = np.empty((int(counts.sum()), n_layers, dim), np.float32)  # filled in place: no concatenated copy
    multilabel = dataset.labels == "multilabel"
    y = np.zeros((len(x), len(dataset.classes)), np.float32) if multilabel else np.empty(len(x), np.int64)
    row = 0
    for item, pick, lab in zip(present, picks, labels):
        f = feats[item.id]
        end = row + len(pick)
        if dataset.level == "frame":
            x[row:end] = np.asarray(f[:, pick], dtype=np.float32).transpose(1, 0, 2)  # (L, T', D) -> (T', L, D)
            y[row:end] = lab[pick]
        else:
            x[row] = f
            if multilabel:
                y[row, [class_index[tag] for tag in item.labels if tag in class_index]] = 1
            else:
                y[row] = class_index[item.labels[0]]
        row = end
    return Rows(x, y, np.repeat(np.array(units), counts))
