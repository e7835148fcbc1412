"""Typed dataclass configs with type-checked overrides; unknown keys are rejected.

Values from the command line (`--set key=value`) are parsed as YAML scalars (never evaluated),
then checked against the dataclass field's annotation.
"""

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from benchmark.errors import MelbenchError

T = TypeVar("T")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Parse `key=value` strings; values are YAML scalars (`3`, `0.5`, `true`, `text`).

    Args:
        pairs: strings of the form `key=value`.

    Returns:
        A dict of keys to parsed values.

    Raises:
        MelbenchError: a string has no `=` or an empty key.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise MelbenchError(f"--set {pair!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value
    return out


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against `annotation`, converting only lossless cases (int -> float, str -> Path)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except MelbenchError:
                continue
        raise MelbenchError(f"{where}: expected {annotation}, got {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return value
        raise MelbenchError(f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise MelbenchError(f"{where}: expected a list, got {value!r}")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return origin(_coerce(v, item_type, where) for v in value)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(value, annotation):
        return value
    name = getattr(annotation, "__name__", str(annotation))
    raise MelbenchError(f"{where}: expected {name}, got {value!r} ({type(value).__name__})")


def build_config(
    cls: type[T], options: Mapping[str, Any], what: str = "option", field_what: Mapping[str, str] | None = None
) -> T:
    """Make a dataclass instance from defaults plus `options`, type-checked.

    Args:
        cls: a dataclass type.
        options: overrides; every key must be a field of `cls`.
        what: how errors name the options (e.g. "mel option").
        field_what: a more precise `what` for some keys (e.g. with their line in a file).

    Returns:
        An instance of `cls`.

    Raises:
        MelbenchError: an unknown key (the known ones are listed) or a value of the wrong type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise MelbenchError(f"unknown {what} {unknown[0]!r}; known: {', '.join(sorted(fields))}")
    field_what = field_what or {}
    values = {k: _coerce(v, hints[k], f"{field_what.get(k, what)} {k!r}") for k, v in options.items()}
    return cls(**values)


def config_dict(config: object) -> dict[str, Any]:
    """A dataclass as a JSON-friendly dict (Paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
