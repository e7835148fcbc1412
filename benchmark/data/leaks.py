"""Leak checks run at the end of every build (and by the tests): no group on two sides of a
split, and no pretraining item (piece, note render, sentence, track) in any test split."""

import json
from pathlib import Path

from benchmark.data.manifest import Dataset
from benchmark.errors import MelbenchError


def check_split_groups(dataset: Dataset) -> None:
    """Raise when one group (piece, sentence, program, recording) sits in two splits.

    Raises:
        MelbenchError: naming the dataset, the group and its splits.
    """
    sides: dict[str, set[str]] = {}
    for item in dataset.items:
        sides.setdefault(item.group, set()).add(item.split)
    for group, splits in sorted(sides.items()):
        if len(splits) > 1:
            raise MelbenchError(f"dataset {dataset.name!r}: group {group!r} is in splits {sorted(splits)}")


def check_pretraining_disjoint(datasets: list[Dataset], corpus_manifests: list[Path]) -> None:
    """Raise when a pretraining corpus holds an item that a downstream test split also holds.

    Items are compared by `source_item` (e.g. "piece:bach/bwv1.6.mxl#", "sentence:<id>",
    "note:timgm6mb/40/60"): the same piece rendered differently is still the same item.

    Args:
        datasets: the downstream datasets.
        corpus_manifests: `manifest.jsonl` files of the corpora.

    Raises:
        MelbenchError: naming the corpus, the item and the dataset.
    """
    tested: dict[str, str] = {}
    for dataset in datasets:
        for item in dataset.split("test"):
            tested[item.extra.get("source_item", item.group)] = dataset.name
    for manifest in corpus_manifests:
        for n, line in enumerate(manifest.read_text().splitlines(), 1):
            record = json.loads(line)
            key = record.get("source_item", record.get("group"))
            if key in tested:
                raise MelbenchError(
                    f"{manifest}:{n}: pretraining item {key!r} is in the test split of {tested[key]!r}"
                )
