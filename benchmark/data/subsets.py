"""Low-data subsets of a training split: seeded, stratified, grouped and nested.

The unit of selection is an item's recording: its `source_item` (the piece, sentence or note
render it came from, which embedded datasets record and a manifest may name) or else the item
itself. So crops of one piece, or one sentence in two voices, are always selected together,
while the split `group` (e.g. every note of one GM program, or every crop of a track in a
manifest without `source_item`) never makes the smallest subsets coarse: a label fraction
means that share of the training items.

For a seed, every unit of the training split gets one position
in a single ordering; the subset at fraction f is the shortest prefix holding at least
`ceil(f * n_items)` items. Because every fraction is a prefix of the same ordering, the 1%
subset lies inside the 5% subset for the same seed (nested), and a unit is either wholly in
or wholly out (grouped). Stratification: the ordering starts with one unit per class (so
every class with a training example is present, even where that exceeds the fraction), then interleaves classes by
each unit's relative rank within its class, so any prefix holds about the same share of
every class. A unit's class is its rarest label (multi-label clips and frame-level
utterances hold several): this keeps rare tags and phones represented in small subsets.
"""

import math
from collections import Counter, defaultdict

import numpy as np

from benchmark.data.manifest import Item


def unit_of(item: Item) -> str:
    """The recording an item comes from: `source_item` if the manifest has it, else the item."""
    return str(item.extra.get("source_item", f"item:{item.id}"))


def _item_labels(item: Item) -> set[str]:
    return set(item.labels) or {seg[2] for seg in item.segments}


def subset_order(items: list[Item], seed: int) -> tuple[list[str], int]:
    """The seeded, stratified ordering of the training units (recordings).

    Args:
        items: training items.
        seed: subset seed.

    Returns:
        Unit ids in order (prefixes of it are the subsets) and the number of strata, i.e.
        how many leading units cover one class each.
    """
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[unit_of(item)].append(item)
    label_counts = Counter(lab for item in items for lab in _item_labels(item))
    by_class: dict[str, list[str]] = defaultdict(list)
    for gid in sorted(groups):
        labels = set().union(*(_item_labels(i) for i in groups[gid]))
        # The rarest label decides the stratum; ties broken by name for determinism.
        stratum = min(labels, key=lambda lab: (label_counts[lab], lab)) if labels else ""
        by_class[stratum].append(gid)
    rng = np.random.default_rng(seed)
    firsts, rest = [], []
    for stratum in sorted(by_class):
        members = list(by_class[stratum])
        rng.shuffle(members)
        firsts.append((rng.random(), members[0]))
        n = len(members)
        rest.extend(((rank + rng.random()) / n, gid) for rank, gid in enumerate(members[1:], 1))
    return [gid for _, gid in sorted(firsts)] + [gid for _, gid in sorted(rest)], len(firsts)


def low_data_subset(items: list[Item], fraction: float, seed: int) -> list[Item]:
    """The training items of the subset at `fraction` for `seed`.

    Args:
        items: all training items.
        fraction: share of training items wanted, in (0, 1].
        seed: subset seed.

    Returns:
        The items, in the dataset's order.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(items)
    sizes = Counter(unit_of(item) for item in items)
    target = math.ceil(fraction * len(items))
    order, n_strata = subset_order(items, seed)
    chosen, count = set(), 0
    for position, gid in enumerate(order):
        # Stop at the target size, but never before one unit of every class is in.
        if count >= target and position >= n_strata:
            break
        chosen.add(gid)
        count += sizes[gid]
    return [item for item in items if unit_of(item) in chosen]
