"""The loop the validation-only measurement scripts (`scripts/probe_*.py`) share.

`melbench run` walks every variant of an upstream (controls, compute-curve snapshots) and
writes a report; a measurement behind a protocol setting needs only each upstream's default
checkpoint, probed as `melbench run` probes it, so it walks the pairs here instead.
"""

from collections.abc import Iterator

from benchmark.fingerprints import dataset_fingerprint
from benchmark.pretraining.checkpoints import run_plan
from benchmark.registry import load_upstream
from benchmark.run import RunConfig, TaskRunner
from benchmark.run_inputs import prepare_upstream, resolve_dataset
from benchmark.runs import RunLog
from benchmark.variants import FULL, Variant


def pair_runners(cfg: RunConfig, log: RunLog) -> Iterator[TaskRunner]:
    """Every (upstream, task) pair of `cfg`, upstream by upstream, on the checkpoint `melbench run` reads
    with `cfg`'s `pretrain_steps` (pretrained into $MELBENCH_HOME first if it is missing).

    Args:
        cfg: the upstreams, tasks and probe settings (`validation_only` keeps the test split unscored).
        log: where the pairs' runs are recorded and looked up.

    Returns:
        An iterator of the pairs' runners; an upstream is prepared when its first pair is reached.
    """
    # every dataset is read before any upstream work: a bad manifest stops at once
    datasets = {task: resolve_dataset(spec.dataset, cfg.quick) for task, spec in cfg.tasks.items()}
    plan = run_plan(cfg.quick).with_steps(cfg.pretrain_steps)
    for upstream in cfg.upstreams:
        options = prepare_upstream(upstream, plan, progress=cfg.progress)
        num_layers = int(getattr(load_upstream(upstream, options), "num_layers", 1))
        for task, spec in cfg.tasks.items():
            yield TaskRunner(cfg, log, upstream, Variant(None, options, None, FULL), task, spec, datasets[task],
                             dataset_fingerprint(datasets[task]), num_layers)
