"""The leaderboard rows of one upstream: the model itself, its untrained control and its
pretraining snapshots.

A checkpoint folder written by `melbench pretrain` with `snapshot_steps` keeps the weights of
a few earlier steps under `steps/<step>/` (`benchmark.pretraining.loop.snapshots`). Step 0 is the
control: the same architecture, initial weights and corpus input statistics, never trained,
shown as `NAME[random]`; the rest are the pretraining-compute curve, `NAME[step=N]`. Every
upstream and option set gets the same treatment, so the control is what separates what the
architecture gives (random - Mel) from what pretraining gives (pretrained - random).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.pretraining.loop import snapshots

FULL = "full"  # every fraction and seed, plus the per-layer sweep
CONTROL = "control"  # every fraction and seed
CURVE = "curve"  # the smallest and largest fraction, clip-level tasks only


@dataclass(frozen=True)
class Variant:
    """One leaderboard row of an upstream.

    Attributes:
        name: None for the model as loaded, "random" for the control, "step=N" for a snapshot.
        options: its `load` options.
        step: the pretraining step of a snapshot (0 for the control), else None.
        scope: which probe runs it gets (`FULL`, `CONTROL` or `CURVE`).
    """

    name: str | None
    options: dict[str, Any]
    step: int | None
    scope: str


def variants(options: dict[str, Any]) -> list[Variant]:
    """The model, then its control and snapshots where its checkpoint folder keeps them.

    Args:
        options: the upstream's `load` options (a `checkpoint` folder may hold snapshots).

    Returns:
        The variants, the model itself first.
    """
    found = [Variant(None, options, None, FULL)]
    checkpoint = options.get("checkpoint")
    if checkpoint is None or not Path(checkpoint).is_dir():
        return found
    for step, folder in snapshots(Path(checkpoint)).items():
        name, scope = ("random", CONTROL) if step == 0 else (f"step={step}", CURVE)
        found.append(Variant(name, {**options, "checkpoint": str(folder)}, step, scope))
    return found
