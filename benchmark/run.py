"""`melbench run`: features once per (upstream, dataset), then probes for every
(task, label fraction, seed), each recorded in runs.jsonl; finally the report.

Resuming: features come from the cache and a probe run already in runs.jsonl is skipped, so a
killed run started again redoes at most the probe that was in flight.

The datasets and each upstream's `load` options come from `benchmark.run_inputs`.
"""

import hashlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from benchmark import __version__, memory
from benchmark.cache import cache_key
from benchmark.data.manifest import Dataset
from benchmark.data.probe_rows import Rows, build_rows
from benchmark.data.subsets import low_data_subset, unit_of
from benchmark.errors import MelbenchError
from benchmark.extract import extract_files
from benchmark.fingerprints import dataset_fingerprint
from benchmark.metrics import METRICS, bootstrap, percentile_ci
from benchmark.pretraining.checkpoints import run_plan
from benchmark.registry import available_upstreams, load_upstream
from benchmark.run_inputs import build_embedded_data, prepare_upstream, resolve_dataset
from benchmark.runs import RunLog, git_revision, now_utc, run_id
from benchmark.tasks import ReportSpec, TaskSpec
from benchmark.shared_controls import copy_runs, features_sha256
from benchmark.variants import CONTROL, CURVE, FULL, Variant, variants
from downstreams.probes import ProbeConfig
from downstreams.selection import ProbeGrid, Selection, select_probe


@dataclass(frozen=True)
class RunConfig:
    """What one `melbench run` covers.

    Attributes:
        upstreams: upstream names (default: every discovered one).
        tasks: task specs by name.
        out_dir: results folder.
        quick: quick corpus and tiny presets.
        fractions: label fractions overriding each task's.
        seeds: seeds per fraction overriding each task's.
        layer_sweep: also probe each layer separately (largest fraction, first seed).
        progress: show progress bars.
        overrides: load options per upstream name, over what its `prepare` returns.
        pretrain_steps: pretrain the self-supervised upstreams for this many steps instead of the
            default checkpoint's (`melbench run --pretrain-steps`), into their own folders.
        validation_only: score the validation split only (`melbench ablate`): records hold the
            selected probe's validation score and no test metrics, and no report is written.
        report: how the report written at the end judges the records (`report:` in `tasks.yaml`).
    """

    upstreams: tuple[str, ...]
    tasks: dict[str, TaskSpec]
    out_dir: Path
    quick: bool = False
    fractions: tuple[float, ...] | None = None
    seeds: int | None = None
    layer_sweep: bool = True
    progress: bool = True
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    pretrain_steps: int | None = None
    validation_only: bool = False
    report: ReportSpec = ReportSpec()


MAX_VALID_ROWS = 20000  # validation rows a probe is selected on (a fixed sample on frame-level sets)


def _probe_config(spec: TaskSpec, layer: int | None) -> ProbeConfig:
    # Frame-level tasks have ~100 rows per second of audio: larger MLP batches, same step budget.
    batch = 1024 if spec.level == "frame" else 256
    return ProbeConfig(kind=spec.probe, layer=layer, batch_size=batch, lbfgs_iters=spec.lbfgs_iters)


def _probe_grid(spec: TaskSpec) -> ProbeGrid:
    return ProbeGrid(l2=spec.l2_grid, lr=spec.lr_grid if spec.probe == "mlp" else (), layer_choice=spec.layer_choice)


def _valid_score(spec: TaskSpec, dataset: Dataset) -> Callable[[np.ndarray, np.ndarray], float]:
    """The headline metric on validation rows: what the probe's hyper-parameters are chosen by."""
    metric = METRICS[spec.metrics[0]]
    return lambda y, scores: metric.value(y, scores, dataset.classes)


def _evaluate(spec: TaskSpec, dataset: Dataset, test: Rows, scores: np.ndarray) -> tuple[dict, dict]:
    metrics, boots = {}, {}
    for name in spec.metrics:
        value = METRICS[name].value(test.y, scores, dataset.classes)
        boot = bootstrap(name, test.y, scores, dataset.classes, test.unit)
        lo, hi = percentile_ci(boot)
        metrics[name] = {"value": value, "ci95": [lo, hi]}
        boots[name] = [round(float(v), 6) for v in boot]
    return metrics, boots


class TaskRunner:
    """Features of one (upstream, task) pair and the probe runs on them.

    Constructing it only fingerprints the inputs (cheap: content hashes are memoised), so a
    resumed run skips a finished pair without reading its features; `load` extracts (or reads
    from the cache) and builds the validation and test rows, once, before the first probe.
    """

    def __init__(self, cfg: RunConfig, log: RunLog, upstream: str, variant: Variant, task: str, spec: TaskSpec,
                 dataset: Dataset, dataset_sha256: str, num_layers: int):
        self.cfg, self.log, self.upstream, self.variant, self.task, self.spec = cfg, log, upstream, variant, task, spec
        self.dataset, self.num_layers = dataset, num_layers
        self.pool = dataset.level == "clip"  # clip probes need only mean+std: cache that, not frames
        key = cache_key(upstream, variant.options, layers=True, pool=self.pool)
        self.identity = {
            "upstream": upstream,
            "upstream_options": key["options"],
            "variant": variant.name,
            "pretrain_step": variant.step,
            "checkpoint_sha256": key["checkpoint_sha256"],
            "code_sha256": key["code_sha256"],
            "task": task,
            "dataset": spec.dataset,
            "dataset_sha256": dataset_sha256,
            "quick": cfg.quick,
            "max_train_rows": spec.max_train_rows,
            **({"validation_only": True} if cfg.validation_only else {}),
        }
        self.loaded = False
        self.skipped: list[tuple[str, str]] = []

    def load(self) -> None:
        """Extract (or read cached) features and build the validation and test rows."""
        if self.loaded:
            return
        paths = sorted({str(item.path) for item in self.dataset.items})
        report = extract_files(self.upstream, self.variant.options, [Path(p) for p in paths], layers=True,
                               progress=self.cfg.progress, pool=self.pool)
        self.skipped = report.skipped
        for path, reason in self.skipped:
            print(f"  skipped item: {reason}", flush=True)
        self.extract_s = report.extract_s
        self.provenance = report.provenance
        self.dataset_hours = {
            split: round(sum(i.duration_s for i in self.dataset.split(split)) / 3600, 3)
            for split in ("train", "valid", "test")
        }
        by_path = {str(r.path): r.feature_path for r in report.items}
        self.feats = {i.id: np.load(by_path[str(i.path)], mmap_mode="r") for i in self.dataset.items if str(i.path) in by_path}
        if not self.feats:
            raise MelbenchError(f"no item of {self.spec.dataset} could be read")
        self.frame_rate = report.frame_rate
        self.train_items = [i for i in self.dataset.split("train") if i.id in self.feats]
        # the probe is chosen on a fixed sample of validation rows; the test split is scored whole
        self.valid = build_rows(self.dataset, self.dataset.split("valid"), self.feats, self.frame_rate, MAX_VALID_ROWS)
        test_items = self.dataset.split("test")
        self.test = build_rows(self.dataset, test_items, self.feats, self.frame_rate)
        # the bootstrap resamples the test items' split groups (recording, piece, sentence,
        # preset): what a split keeps whole is what is independent; crops of one track are not
        _, group_of_item = np.unique([item.group for item in test_items], return_inverse=True)
        self.test.unit = group_of_item[self.test.unit]
        self.n_test_units = int(len(np.unique(self.test.unit)))
        self.loaded = True
        memory.release_freed_memory()  # the extraction's batches, freed but kept by the allocator

    def jobs(self) -> list[tuple[float, int, int | None]]:
        """(fraction, seed, layer) of every probe run this pair needs; layer None = the task's `layer_choice`."""
        fractions = self.cfg.fractions or self.spec.fractions
        seeds = self.cfg.seeds or self.spec.seeds
        if self.variant.scope == CURVE:  # a snapshot of the compute curve: both ends of the label axis
            if self.spec.level != "clip":
                return []
            fractions = tuple(sorted({min(fractions), max(fractions)}))
        jobs: list[tuple[float, int, int | None]] = [(f, s, None) for f in fractions for s in range(seeds)]
        if self.variant.scope == FULL and self.cfg.layer_sweep and self.num_layers > 1:
            jobs += [(max(fractions), 0, layer) for layer in range(self.num_layers)]
        return jobs

    def ident(self, fraction: float, seed: int, layer: int | None) -> dict[str, Any]:
        """What identifies one probe run of this pair (hashed into its `run_id`)."""
        return {**self.identity, "fraction": fraction, "seed": seed, "layer": layer,
                "probe": asdict(_probe_config(self.spec, layer)), "probe_grid": _probe_grid(self.spec).record()}

    def training_rows(self, fraction: float, seed: int) -> tuple[list, Rows]:
        """The labelled subset of `fraction` and `seed` (the same for every upstream) and its
        probe rows (capped at the task's `max_train_rows` by a sample of that seed).

        Returns:
            (the subset's items, their rows).
        """
        self.load()
        subset = low_data_subset(self.train_items, fraction, seed)
        return subset, build_rows(self.dataset, subset, self.feats, self.frame_rate, self.spec.max_train_rows, seed)

    def select(self, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, seed: int,
               layer: int | None = None, layer_choice: str | None = None) -> Selection:
        """The task's probe fitted at every grid point, chosen on the validation rows' labels.

        Args:
            x_train: `(rows, layers, dim)` training features (`training_rows`, or a view of them).
            y_train: their labels.
            x_valid: the validation rows' features, the same view (`self.valid.x` or one of it).
            seed: the probe's seed.
            layer: the one layer to read; None leaves it to the task's `layer_choice`.
            layer_choice: how the grid chooses the layers read, instead of the task's `layer_choice`.

        Returns:
            `select_probe`'s selection.
        """
        grid = _probe_grid(self.spec)
        if layer_choice is not None:
            grid = replace(grid, layer_choice=layer_choice)
        return select_probe(
            x_train, y_train, x_valid, self.valid.y, len(self.dataset.classes), self.dataset.labels == "multilabel",
            _probe_config(self.spec, layer), grid, _valid_score(self.spec, self.dataset), seed,
        )

    def pending(self) -> list[tuple[float, int, int | None]]:
        """The jobs not yet in runs.jsonl."""
        return [job for job in self.jobs() if run_id(self.ident(*job)) not in self.log.done]

    def run(self, fraction: float, seed: int, layer: int | None) -> bool:
        """Train, test and record one probe; False if it was already recorded."""
        ident = self.ident(fraction, seed, layer)
        rid = run_id(ident)
        if rid in self.log.done:
            return False
        subset, train = self.training_rows(fraction, seed)
        start = time.perf_counter()
        chosen = self.select(train.x, train.y, self.valid.x, seed, layer)
        probe = chosen.probe
        train_s = time.perf_counter() - start
        metrics, boots = {}, {}
        if not self.cfg.validation_only:
            metrics, boots = _evaluate(self.spec, self.dataset, self.test, probe.predict(self.test.x))  # test touched once
        weights = probe.model.layer_weights()
        self.log.append({
            **ident,
            "run_id": rid,
            "headline_metric": self.spec.metrics[0],
            "scarce_fraction": self.spec.scarce_fraction,
            "metrics": metrics,
            "bootstrap": boots,
            "n_train_items": len(subset),
            "n_train_units": len({unit_of(item) for item in subset}),
            "train_hours": round(sum(item.duration_s for item in subset) / 3600, 4),
            "subset_sha256": hashlib.sha256("\n".join(sorted(item.id for item in subset)).encode()).hexdigest()[:16],
            "n_test_units": self.n_test_units,
            "n_train_rows": int(len(train.y)),
            "n_test_items": len(self.dataset.split("test")),
            "layer_weights": None if weights is None else [round(float(w), 4) for w in weights],
            "probe_epochs": sum(point["epochs"] for point in chosen.curve),  # passes over the rows, whole grid
            "probe_choice": {"l2": chosen.config.l2, "lr": chosen.config.lr if self.spec.probe == "mlp" else None,
                             "layer": chosen.config.layer, "at_edge": chosen.at_edge},
            "probe_valid_curve": chosen.curve,
            "probe_valid_score": chosen.score,
            "train_s": round(train_s, 3),
            "extract_s": round(self.extract_s, 3),
            "upstream_provenance": self.provenance,
            "dataset_hours": self.dataset_hours,
            "skipped_items": [p for p, _ in self.skipped],
            "git_revision": git_revision(),
            "melbench_version": __version__,
            "date": now_utc(),
        })
        del train, chosen, probe  # this probe's rows, grid states and optimiser: freed before the trim
        memory.release_freed_memory()
        return True


def run_all(cfg: RunConfig) -> dict[str, int]:
    """Run every (upstream, task) pair of `cfg`, then write the report.

    Args:
        cfg: what to run.

    Returns:
        Counts: `done` probe runs, `skipped_done` (already recorded), `failed_pairs`, `copied` (runs of
        a control with the same features as an earlier one, `benchmark.shared_controls`).
    """
    from benchmark.report.write import write_report

    known = available_upstreams()
    for name in cfg.upstreams:
        if name.split(":", 1)[0] not in known and "." not in name:
            raise MelbenchError(f"unknown upstream {name!r}; known: {', '.join(known)}")
    counts = {"done": 0, "skipped_done": 0, "failed_pairs": 0, "copied": 0}
    controls: dict[str, tuple[str, Variant, str]] = {}  # features_sha256 -> the first control with them
    started = time.perf_counter()
    # wall minutes of each upstream run whole by this process, for the time-left estimate (one resumed
    # part-way, or found finished, would make the estimate too small)
    upstream_min: list[float] = []

    def stage(u_index: int, what: str) -> None:
        elapsed_min = (time.perf_counter() - started) / 60
        left = ""
        if upstream_min:  # a crude estimate: the mean finished upstream times the ones still to run
            mean_min = sum(upstream_min) / len(upstream_min)
            in_this_min = (time.perf_counter() - upstream_start) / 60
            left_min = max(0.0, mean_min * (len(cfg.upstreams) - u_index + 1) - in_this_min)
            left = f", ~{left_min:.0f} min left"
        print(f"[{elapsed_min:5.1f} min{left}] upstream {u_index}/{len(cfg.upstreams)} {what}", flush=True)

    with RunLog(cfg.out_dir) as log:
        build_embedded_data((spec.dataset for spec in cfg.tasks.values()), cfg.quick)
        # every dataset is read before any upstream work: a bad manifest stops the run at once
        datasets = {task: resolve_dataset(spec.dataset, cfg.quick) for task, spec in cfg.tasks.items()}
        fingerprints = {task: dataset_fingerprint(dataset) for task, dataset in datasets.items()}
        plan = run_plan(cfg.quick).with_steps(cfg.pretrain_steps)
        for u_index, upstream in enumerate(cfg.upstreams, 1):
            upstream_start, before = time.perf_counter(), dict(counts)
            stage(u_index, f"{upstream}: preparing (pretraining if its checkpoint is missing)")
            given = cfg.overrides.get(upstream, {})
            options = {**prepare_upstream(upstream, plan, cfg.progress, given), **given}
            for variant in variants(options):
                label = upstream + (f"[{variant.name}]" if variant.name else "")
                pairs = {t: s for t, s in cfg.tasks.items() if variant.scope != CURVE or s.level == "clip"}
                try:
                    model = load_upstream(upstream, variant.options)
                except MelbenchError as err:
                    print(f"  skipped {label}: {err}", flush=True)
                    counts["failed_pairs"] += len(pairs)
                    continue
                num_layers = int(getattr(model, "num_layers", 1))
                twin = None
                if variant.scope == CONTROL:  # the same model as an earlier control: its runs, not new ones
                    twin = controls.setdefault(features_sha256(model), (upstream, variant, label))
                    twin = None if twin[0] == upstream else twin
                for task, spec in pairs.items():
                    runner = TaskRunner(cfg, log, upstream, variant, task, spec, datasets[task], fingerprints[task],
                                        num_layers)
                    jobs, pending = runner.jobs(), runner.pending()
                    counts["skipped_done"] += len(jobs) - len(pending)
                    if pending and twin is not None:
                        twin_runner = TaskRunner(cfg, log, twin[0], twin[1], task, spec, datasets[task],
                                                 fingerprints[task], num_layers)
                        copied = copy_runs(runner, twin_runner, twin[2], getattr(model, "provenance", None))
                        counts["copied"] += copied
                        stage(u_index, f"{label} x {task}: the features of {twin[2]}: {copied} of its runs copied")
                        pending = runner.pending()
                    if not pending:
                        continue
                    stage(u_index, f"{label} x {task}: features (cached ones are reused), then "
                                   f"{len(pending)} of {len(jobs)} probes")
                    try:
                        runner.load()
                    except MelbenchError as err:
                        print(f"  skipped {label} x {task}: {err}", flush=True)
                        counts["failed_pairs"] += 1
                        continue
                    for fraction, seed, layer in tqdm(pending, desc=f"probe {label} x {task}", disable=not cfg.progress):
                        counts["done" if runner.run(fraction, seed, layer) else "skipped_done"] += 1
            if counts["skipped_done"] == before["skipped_done"] and counts["done"] > before["done"]:
                upstream_min.append((time.perf_counter() - upstream_start) / 60)
        if not cfg.validation_only:
            write_report(cfg.out_dir, cfg.report)
    minutes = (time.perf_counter() - started) / 60
    print(f"run finished in {minutes:.1f} min: {counts['done']} probe runs, {counts['skipped_done']} already done, "
          f"{counts['copied']} copied from a control with the same features")
    return counts

