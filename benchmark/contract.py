"""The module contract: every module-level name the harness reads from an upstream module, in
one table, and the checker `melbench check` runs over it ("expected X, got Y").

The README's contract table shows the same names (a test keeps the two in step).
"""

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from benchmark.check import CheckResult
from benchmark.upstream import Reference


@dataclass(frozen=True)
class ModuleName:
    """One name of the contract."""

    name: str
    required: bool
    expected: str  # what it must be, in words
    valid: Callable[[Any], bool]
    read_by: str


def _strings(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)


def _spec(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("name", "config_cls", "presets", "model_cls")) and isinstance(value.presets, dict)


CONTRACT = (
    ModuleName("load", True, "a function load(**options) returning the upstream", callable, "everything"),
    ModuleName("prepare", False, "a function prepare(plan, progress, given) returning load options", callable,
               "benchmark.run_inputs (upstreams without SPEC)"),
    ModuleName("ARGUMENT", False, "the option name a NAME:VALUE name fills (a str)", lambda v: isinstance(v, str),
               "benchmark.registry"),
    ModuleName("CODE_OPTIONS", False, "option names whose values are modules (a tuple of str)", _strings,
               "benchmark.fingerprints"),
    ModuleName("FILE_OPTIONS", False, "option names whose values are files the features depend on (a tuple of str)",
               _strings, "benchmark.cache"),
    ModuleName("CHECK_OPTIONS", False, "the options the contract tests load it with (a dict)",
               lambda v: isinstance(v, dict), "tests, benchmark.perf.bench"),
    ModuleName("REQUIRES", False, "importable packages it needs (a tuple of str)", _strings, "tests"),
    ModuleName("SPEC", False, "an SSLSpec (name, config_cls, presets dict, model_cls)", _spec,
               "benchmark.pretraining.loop, benchmark.run_inputs"),
    ModuleName("to_s3prl", False, "a function to_s3prl(checkpoint) returning an s3prl checkpoint dict", callable,
               "melbench to-s3prl"),
    ModuleName("REFERENCE", False, "a benchmark.upstream.Reference (another library's build of an upstream)",
               lambda v: isinstance(v, Reference), "benchmark.perf"),
)


def check_module(module: ModuleType) -> list[CheckResult]:
    """Check an upstream module's contract names.

    Args:
        module: the imported upstream module.

    Returns:
        One result per name it defines (and per required name it lacks).
    """
    results = []
    for entry in CONTRACT:
        if not hasattr(module, entry.name):
            if entry.required:
                results.append(CheckResult(f"module {entry.name}", False, f"expected {entry.expected}, got nothing"))
            continue
        value = getattr(module, entry.name)
        if entry.valid(value):
            shown = f"{type(value).__name__} {getattr(value, '__name__', '')}".strip() if callable(value) \
                else repr(value)[:60]
            results.append(CheckResult(f"module {entry.name}", True, shown))
        else:
            results.append(CheckResult(f"module {entry.name}", False,
                                       f"expected {entry.expected}, got {type(value).__name__}"))
    return results
