"""Seeded, stratified, grouped train/valid/test splits for data that comes without one."""

from collections import Counter

from benchmark.data.common import unit_hash

DEFAULT_FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}


def grouped_stratified_split(groups: list[str], labels: list[str], seed: int = 0,
                             fractions: dict[str, float] | None = None) -> dict[str, str]:
    """Assign whole groups to splits, stratified by each group's most common label.

    Within a stratum, groups are ordered by a seeded hash and cut at the cumulative fractions.
    A stratum with at least three groups puts at least one in valid and one in test; its
    remaining groups go to train (so every class is trained on).

    Args:
        groups: group of each item (a recording, a piece, a speaker).
        labels: label of each item used to stratify (for multi-label data: pick one per item).
        seed: split seed.
        fractions: share of groups per split (default 0.8 / 0.1 / 0.1).

    Returns:
        group -> "train" | "valid" | "test".
    """
    fractions = fractions or DEFAULT_FRACTIONS
    per_group: dict[str, Counter] = {}
    for group, label in zip(groups, labels):
        per_group.setdefault(group, Counter())[label] += 1
    strata: dict[str, list[str]] = {}
    for group, counts in per_group.items():
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        strata.setdefault(top, []).append(group)
    out: dict[str, str] = {}
    for members in strata.values():
        members.sort(key=lambda g: unit_hash(seed, "split", g))
        n = len(members)
        n_test = round(n * fractions["test"])
        n_valid = round(n * fractions["valid"])
        if n >= 3:
            n_test, n_valid = max(n_test, 1), max(n_valid, 1)
        for i, group in enumerate(members):
            out[group] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return out
