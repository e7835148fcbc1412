"""`tasks.yaml`: which tasks `melbench run` evaluates and how the report judges them, loaded
into frozen dataclasses.

Unknown keys and wrong types are rejected with the file, line and the known keys.
"""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmark.config import build_config
from benchmark.errors import MelbenchError

class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-5` as a float as YAML 1.2 does (1.1 wants `1.0e-5`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
               r"|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."),
)

DEFAULT_TASKS_FILE = Path(__file__).resolve().parent.parent / "tasks.yaml"
LEVELS = ("frame", "clip")
LABEL_TYPES = ("multiclass", "multilabel")


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task.

    Attributes:
        dataset: the dataset it reads (embedded name or manifest path).
        level: "frame" (a label per frame) or "clip" (a label set per clip).
        labels: "multiclass" or "multilabel".
        metrics: metric names; the first is the headline figure.
        probe: "linear" or "mlp".
        fractions: label fractions of the training split, each in (0, 1].
        seeds: seeds per fraction.
        max_train_rows: cap on a probe's training rows, a seeded uniform sample of the labelled
            subset's rows (for frame-level sets, whose neighbouring frames are near copies);
            None uses every row.
        description: one line for `melbench list`.
        l2_grid: the probe's candidate L2 strengths, chosen per (upstream, fraction, seed) on
            the validation split by the headline metric (`downstreams.selection`).
        lr_grid: the MLP probe's candidate learning rates (the linear probe's L-BFGS has none).
        lbfgs_iters: L-BFGS iterations per grid point of the linear probe.
        layer_choice: how the probe reads an upstream with several layers: "validation" probes
            each layer alone and keeps the best on the validation split (with the L2 strength);
            "weighted" learns a softmax-weighted sum of the layers with the head (SUPERB's).
        scarce_fraction: label budgets whose smallest fraction is at most this count as scarce
            in the report's answer (each record carries it).
    """

    dataset: str
    level: str
    labels: str
    metrics: tuple[str, ...]
    probe: str = "linear"
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 1.0)
    seeds: int = 3
    max_train_rows: int | None = None
    description: str = ""
    l2_grid: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    lr_grid: tuple[float, ...] = (1e-3, 3e-3)
    lbfgs_iters: int = 100
    layer_choice: str = "validation"
    scarce_fraction: float = 0.05


@dataclass(frozen=True)
class ReportSpec:
    """How `melbench report` turns effects over Mel into verdicts (`report:` in `tasks.yaml`).

    Attributes:
        fdr_q: the Benjamini-Hochberg false-discovery rate over the family of comparisons.
        min_effect: the smallest significant advantage (in the headline metric) the answer
            counts as a win of the learned features.
    """

    fdr_q: float = 0.05
    min_effect: float = 0.03


TOP_LEVEL_KEYS = ("defaults", "tasks", "report")


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node, where: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise MelbenchError(f"{where}:{_line(node)}: expected a mapping")
    return {k.value: (k, v) for k, v in node.value}


def _top(path: Path) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """The tasks file's top-level sections, unknown ones rejected with their line."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=_Loader)
    except OSError as err:
        raise MelbenchError(f"{path}: cannot read tasks file ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise MelbenchError(f"{path}: not valid YAML ({err})") from None
    if root is None:
        raise MelbenchError(f"{path}: empty tasks file")
    top = _mapping(root, str(path))
    for key, (knode, _) in top.items():
        if key not in TOP_LEVEL_KEYS:
            raise MelbenchError(f"{path}:{_line(knode)}: unknown top-level key {key!r}; known: "
                                f"{', '.join(TOP_LEVEL_KEYS)}")
    return top


def load_tasks(path: str | Path = DEFAULT_TASKS_FILE) -> dict[str, TaskSpec]:
    """Read a tasks file's tasks.

    Args:
        path: the YAML file (top-level keys `defaults`, `tasks` and `report`).

    Returns:
        `{task name: TaskSpec}` in file order.

    Raises:
        MelbenchError: the file is missing, not YAML, or has an unknown key or bad value
            (the message names the file and line).
    """
    path = Path(path)
    top = _top(path)
    if "tasks" not in top:
        raise MelbenchError(f"{path}: no 'tasks' section")
    known = [f.name for f in dataclasses.fields(TaskSpec)]
    defaults: dict[str, Any] = {}
    default_lines: dict[str, int] = {}
    if "defaults" in top:
        defaults = _checked(top["defaults"][1], known, f"{path}", "defaults")
        default_lines = {k: _line(kn) for k, (kn, _) in _mapping(top["defaults"][1], str(path)).items()}
    tasks = {}
    for name, (knode, vnode) in _mapping(top["tasks"][1], str(path)).items():
        values = {**defaults, **_checked(vnode, known, str(path), f"task {name!r}")}
        where = f"{path}:{_line(knode)}: task {name!r}"
        # a wrong type is reported at the line of its key, in the task or in `defaults`
        lines = {**default_lines, **{k: _line(kn) for k, (kn, _) in _mapping(vnode, str(path)).items()}}
        field_what = {k: f"{path}:{line}: task {name!r}:" for k, line in lines.items()}
        spec = build_config(TaskSpec, values, what=f"{where}:", field_what=field_what)
        _validate(spec, where)
        tasks[name] = spec
    return tasks


def select_tasks(tasks: dict[str, TaskSpec], names: tuple[str, ...]) -> dict[str, TaskSpec]:
    """The named tasks, in the order named (`--tasks pitch,key`).

    Args:
        tasks: every task, as `load_tasks` returns them.
        names: the task names asked for.

    Returns:
        `{task name: TaskSpec}` of those names.

    Raises:
        MelbenchError: a name is not a task (the message lists the known ones).
    """
    unknown = [name for name in names if name not in tasks]
    if unknown:
        raise MelbenchError(f"unknown task {unknown[0]!r}; known: {', '.join(tasks)}")
    return {name: tasks[name] for name in names}


def load_report_spec(path: str | Path = DEFAULT_TASKS_FILE) -> ReportSpec:
    """Read a tasks file's `report` section (its defaults where the section or a key is absent).

    Args:
        path: the YAML file.

    Returns:
        The report settings.

    Raises:
        MelbenchError: the file is unreadable, or the section has an unknown key or a bad value.
    """
    path = Path(path)
    top = _top(path)
    if "report" not in top:
        return ReportSpec()
    knode, vnode = top["report"]
    values = _checked(vnode, [f.name for f in dataclasses.fields(ReportSpec)], str(path), "report")
    where = f"{path}:{_line(knode)}: report:"
    field_what = {k: f"{path}:{_line(kn)}: report:" for k, (kn, _) in _mapping(vnode, str(path)).items()}
    spec = build_config(ReportSpec, values, what=where, field_what=field_what)
    if not 0 < spec.fdr_q < 1:
        raise MelbenchError(f"{where} fdr_q must be in (0, 1), got {spec.fdr_q}")
    if spec.min_effect < 0:
        raise MelbenchError(f"{where} min_effect must be >= 0, got {spec.min_effect}")
    return spec


def _checked(node: yaml.Node, known: list[str], path: str, what: str) -> dict[str, Any]:
    """A mapping node's values as Python data, rejecting unknown keys with their line."""
    for key, (knode, _) in _mapping(node, path).items():
        if key not in known:
            raise MelbenchError(f"{path}:{_line(knode)}: unknown key {key!r} in {what}; known: {', '.join(known)}")
    data = yaml.load(yaml.serialize(node), Loader=_Loader)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def _validate(spec: TaskSpec, where: str) -> None:
    if spec.level not in LEVELS:
        raise MelbenchError(f"{where}: level must be one of {', '.join(LEVELS)}, got {spec.level!r}")
    if spec.labels not in LABEL_TYPES:
        raise MelbenchError(f"{where}: labels must be one of {', '.join(LABEL_TYPES)}, got {spec.labels!r}")
    from benchmark.metrics import METRICS

    if not spec.metrics:
        raise MelbenchError(f"{where}: metrics must name at least one metric")
    unknown = [m for m in spec.metrics if m not in METRICS]
    if unknown:
        raise MelbenchError(f"{where}: unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    from downstreams.probes import PROBE_KINDS

    if spec.probe not in PROBE_KINDS:
        raise MelbenchError(f"{where}: probe must be one of {', '.join(PROBE_KINDS)}, got {spec.probe!r}")
    for name in ("l2_grid", "lr_grid"):
        values = getattr(spec, name)
        if not values or any(v <= 0 for v in values) or len(set(values)) != len(values):
            raise MelbenchError(f"{where}: {name} must be distinct positive numbers, got {list(values)}")
    if spec.lbfgs_iters < 1:
        raise MelbenchError(f"{where}: lbfgs_iters must be >= 1, got {spec.lbfgs_iters}")
    from downstreams.selection import LAYER_CHOICES

    if spec.layer_choice not in LAYER_CHOICES:
        raise MelbenchError(f"{where}: layer_choice must be one of {', '.join(LAYER_CHOICES)}, "
                            f"got {spec.layer_choice!r}")
    if not 0 < spec.scarce_fraction <= 1:
        raise MelbenchError(f"{where}: scarce_fraction must be in (0, 1], got {spec.scarce_fraction}")
    bad = [f for f in spec.fractions if not 0 < f <= 1]
    if bad or not spec.fractions:
        raise MelbenchError(f"{where}: fractions must be in (0, 1], got {list(spec.fractions)}")
    if spec.seeds < 1:
        raise MelbenchError(f"{where}: seeds must be >= 1, got {spec.seeds}")
    if spec.max_train_rows is not None and spec.max_train_rows < 1:
        raise MelbenchError(f"{where}: max_train_rows must be >= 1, got {spec.max_train_rows}")
