"""What `melbench run` reads before any probe: the tasks' datasets and each upstream's `load`
options.

For an upstream melbench pretrains (its module defines `SPEC`) the run uses the checkpoint of
its `CheckpointPlan`, pretraining it first if missing, unless the user's `--set` options name
one (`benchmark.pretraining.loop.ensure_pretrained`). Any other upstream module may define
`prepare(plan: CheckpointPlan, progress: bool, given: dict) -> dict` returning the `load`
options the run should use; without it an upstream is loaded with the given options only.
"""

from typing import Any, Iterable

from benchmark.data.manifest import Dataset, load_dataset_dir
from benchmark.pretraining.checkpoints import CheckpointPlan
from benchmark.pretraining.loop import ensure_pretrained
from benchmark.registry import load_module


def resolve_dataset(name: str, quick: bool) -> Dataset:
    """Load a task's dataset: the built-in demo, or anything `benchmark.data.load.load_dataset`
    resolves (embedded name, dataset folder, user manifest, `LOADER:PATH`).

    Args:
        name: dataset name or path.
        quick: use the quick build of embedded datasets.

    Returns:
        The dataset.
    """
    if name == "demo":
        from benchmark.data.demo import build_demo_dataset

        return load_dataset_dir(build_demo_dataset())
    from benchmark.data.load import load_dataset

    return load_dataset(name, quick=quick)


def build_embedded_data(dataset_names: Iterable[str], quick: bool) -> None:
    """Build (or complete) the embedded datasets if one of `dataset_names` is embedded.

    The build is idempotent, so when everything is built this costs a few seconds.

    Args:
        dataset_names: the datasets the run's tasks name.
        quick: build the quick corpus.
    """
    from benchmark.data.build import build
    from benchmark.data.common import DATASETS

    if any(name in DATASETS for name in dataset_names):
        print(f"data: building the embedded corpus{' (quick)' if quick else ''} where missing", flush=True)
        build(quick=quick)


def prepare_upstream(name: str, plan: CheckpointPlan, progress: bool = True,
                     given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `load` options `melbench run` uses for an upstream (see the module docstring).

    Args:
        name: the upstream.
        plan: the checkpoint a self-supervised upstream is pretrained to.
        progress: show progress bars.
        given: the options the user gave (`--set`); they are applied over what this returns,
            and `prepare` sees them (an explicit checkpoint means no default one is pretrained).

    Returns:
        `load` options.
    """
    module = load_module(name)
    if getattr(module, "SPEC", None) is not None:  # melbench pretrains it: the harness decides when
        return ensure_pretrained(name, plan, progress, given)
    prepare = getattr(module, "prepare", None)
    return dict(prepare(plan=plan, progress=progress, given=dict(given or {}))) if prepare else {}
