"""Which pretrained checkpoint is the default: one setting for `melbench run`, `extract`,
`check`, the HEAR export and every `load` without a `checkpoint` option.

`melbench run` pretrains `DEFAULT_CHECKPOINT` (or `QUICK_CHECKPOINT` with `--quick`) for each
self-supervised upstream that has none yet, and `load` reads the same folder by default, so
after a run the learned upstreams are found with no option. Steps are fixed rather than timed
so that a run is reproducible; `melbench pretrain` trains any other corpus, preset or length.
"""

from dataclasses import dataclass
from pathlib import Path

from benchmark.home import melbench_home


@dataclass(frozen=True)
class CheckpointPlan:
    """One default checkpoint: what it is pretrained on, at which size, for how long.

    Attributes:
        corpus: a named corpus (`benchmark.corpora.CORPORA`).
        preset: the upstream's preset.
        steps: optimiser steps.
        quick: the quick build of the corpus.
        snapshots: weights kept along the way, as fractions of `steps`: step 0 is the untrained
            control (same architecture, initial weights and corpus statistics), the others the
            pretraining-compute curve (`benchmark.variants`).
    """

    corpus: str
    preset: str
    steps: int
    quick: bool = False
    snapshots: tuple[float, ...] = (0.0, 0.125, 0.25, 0.5)

    @property
    def corpus_name(self) -> str:
        """The corpus as checkpoint folders name it (`mix`, `mix-quick`)."""
        return f"{self.corpus}-quick" if self.quick else self.corpus

    def folder(self, upstream: str) -> Path:
        """Where this plan's checkpoint of `upstream` lives."""
        return checkpoint_dir(upstream, self.corpus_name, self.preset)

    def snapshot_steps(self) -> tuple[int, ...]:
        """The steps whose weights are kept (sorted, without repeats)."""
        return tuple(sorted({round(f * self.steps) for f in self.snapshots}))


# The `mix` corpus (music and speech, since the tasks are both) at the small preset.
DEFAULT_CHECKPOINT = CheckpointPlan(corpus="mix", preset="small", steps=400)
QUICK_CHECKPOINT = CheckpointPlan(corpus="mix", preset="tiny", steps=150, quick=True)


def run_plan(quick: bool) -> CheckpointPlan:
    """The checkpoint `melbench run` (or `melbench run --quick`) pretrains and uses."""
    return QUICK_CHECKPOINT if quick else DEFAULT_CHECKPOINT


def checkpoint_dir(upstream: str, corpus: str, preset: str) -> Path:
    """`$MELBENCH_HOME/checkpoints/<upstream>/<corpus>-<preset>/`."""
    return melbench_home() / "checkpoints" / upstream / f"{corpus}-{preset}"
