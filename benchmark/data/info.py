"""Summaries of datasets and corpora: items, hours and classes per split, label counts."""

from collections import Counter

from benchmark.data.manifest import SPLITS, Dataset
from benchmark.logmel import MelConfig

HOP_S = MelConfig().hop_s  # frame-level labels are counted in log-Mel frames


def split_table(dataset: Dataset) -> list[str]:
    """One line per split: items, groups, hours, classes present.

    Returns:
        Text lines.
    """
    lines = []
    for split in SPLITS:
        items = dataset.split(split)
        hours = sum(i.duration_s for i in items) / 3600
        classes = {lab for i in items for lab in (i.labels or [s[2] for s in i.segments])}
        lines.append(f"  {split:<6} {len(items):>6} items {len({i.group for i in items}):>6} groups "
                     f"{hours:7.2f} h {len(classes):>4} classes")
    return lines


def label_counts(dataset: Dataset, split: str) -> Counter:
    """Items per label in one split (frame level: log-Mel frames, 10 ms each, per label)."""
    counts: Counter = Counter()
    for item in dataset.split(split):
        for lab in item.labels:
            counts[lab] += 1
        for start_s, end_s, lab in item.segments:
            counts[lab] += round((end_s - start_s) / HOP_S)
    return counts


def describe(dataset: Dataset, distribution: bool = True) -> str:
    """The `melbench data info` text of a dataset.

    Args:
        dataset: the dataset.
        distribution: include the label distribution per split.

    Returns:
        Multi-line text.
    """
    lines = [f"{dataset.name}: {dataset.level}-level {dataset.labels}, {len(dataset.classes)} classes "
             f"({dataset.root})"]
    if dataset.description:
        lines.append(f"  {dataset.description}")
    lines += split_table(dataset)
    if distribution:
        unit = "frames" if dataset.level == "frame" else "items"
        for split in SPLITS:
            counts = label_counts(dataset, split)
            shown = ", ".join(f"{lab} {n}" for lab, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"  {split} label {unit}: {shown}")
    return "\n".join(lines)
