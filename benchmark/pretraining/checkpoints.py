"""Which pretrained checkpoint is the default: one setting for `melbench run`, `extract`,
`check`, the HEAR export and every `load` without a `checkpoint` option.

`melbench run` pretrains `DEFAULT_CHECKPOINT` (or `QUICK_CHECKPOINT` with `--quick`) for each
self-supervised upstream that has none yet, and `load` reads the same folder by default, so
after a run the learned upstreams are found with no option. Steps are fixed rather than timed
so that a run is reproducible; `melbench pretrain` trains any other corpus, preset or length.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from benchmark.errors import MelbenchError
from benchmark.home import melbench_home


@dataclass(frozen=True)
class CheckpointPlan:
    """One default checkpoint: what it is pretrained on, at which size, for how long.

    Attributes:
        corpus: a named corpus (`benchmark.data.corpora.CORPORA`).
        preset: the upstream's preset.
        steps: optimiser steps.
        quick: the quick build of the corpus.
        snapshots: weights kept along the way, as fractions of `steps`: step 0 is the untrained
            control (same architecture, initial weights and corpus statistics), the others the
            pretraining-compute curve (`benchmark.variants`).
        tag: added to the folder name of a plan other than the default (`with_steps`).
    """

    corpus: str
    preset: str
    steps: int
    quick: bool = False
    snapshots: tuple[float, ...] = (0.0, 0.125, 0.25, 0.5)
    tag: str = ""

    @property
    def corpus_name(self) -> str:
        """The corpus as checkpoint folders name it (`mix`, `mix-quick`)."""
        return f"{self.corpus}-quick" if self.quick else self.corpus

    def folder(self, upstream: str) -> Path:
        """Where this plan's checkpoint of `upstream` lives."""
        return checkpoint_dir(upstream, self.corpus_name, self.preset + (f"-{self.tag}" if self.tag else ""))

    def with_steps(self, steps: int | None) -> "CheckpointPlan":
        """This plan pretrained for `steps` instead (`melbench run --pretrain-steps`), in its own
        folder (`mix-small-4000steps`): a longer schedule is a new run, not a continuation, since
        the learning rate decays to 0 at the last step. None or the plan's own steps: itself."""
        if steps is None or steps == self.steps:
            return self
        if steps < 1:
            raise MelbenchError(f"--pretrain-steps {steps}: expected at least 1")
        return replace(self, steps=steps, tag=f"{steps}steps")

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
