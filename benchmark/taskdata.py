"""Turn a dataset plus cached upstream features into probe rows.

Clip-level tasks read features pooled at extraction (mean and std over frames per layer, one
row per clip); frame-level tasks keep one row per frame, labelled with the segment under the
frame's centre (`i / frame_rate` seconds); frames outside every segment are dropped.
"""

from dataclasses import dataclass

import numpy as np

from benchmark.dataset import Dataset, Item


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


def build_rows(dataset: Dataset, items: list[Item], feats: dict[str, np.ndarray], frame_rate: float) -> Rows:
    """Probe rows for `items` whose features are in `feats` (missing items are skipped).

    Args:
        dataset: gives the level, label type and classes.
        items: the items wanted.
        feats: item id to `(layers, frames, dim)` features (frame level) or `(layers, 2 * dim)`
            pooled features (clip level).
        frame_rate: the upstream's frames per second.

    Returns:
        The rows.
    """
    class_index = {c: i for i, c in enumerate(dataset.classes)}
    xs, ys, units = [], [], []
    for unit, item in enumerate(items):
        if item.id not in feats:
            continue
        f = feats[item.id]
        if dataset.level == "frame":
            labels = frame_labels(item, f.shape[1], frame_rate, class_index)
            keep = labels >= 0
            xs.append(np.asarray(f, dtype=np.float32).transpose(1, 0, 2)[keep])  # (L, T, D) -> (T', L, D)
            ys.append(labels[keep])
            units.append(np.full(int(keep.sum()), unit))
        else:
            xs.append(np.asarray(f, dtype=np.float32)[None])  # (1, L, 2D)
            if dataset.labels == "multilabel":
                hot = np.zeros((1, len(dataset.classes)), np.float32)
                hot[0, [class_index[lab] for lab in item.labels if lab in class_index]] = 1
                ys.append(hot)
            else:
                ys.append(np.array([class_index[item.labels[0]]]))
            units.append(np.array([unit]))
    if not xs:
        raise ValueError("no items with features")
    return Rows(np.concatenate(xs), np.concatenate(ys), np.concatenate(units))
