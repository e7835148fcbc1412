"""Discover upstreams by file name and load them; no central list to edit.

An upstream is `upstreams/<name>.py` (files starting with `_` are helpers), or a file in a
folder listed in `$MELBENCH_UPSTREAM_PATH` (separated by `os.pathsep`), or any importable
module given by dotted path (`mypkg.my_upstream`) for adapters outside the repo.

`NAME:ARGUMENT` loads upstream NAME with one option filled from the name: the module says which
by defining `ARGUMENT = "<option name>"` (the `hear` adapter: `hear:some.module`). Such modules
need their argument, so a run over "every upstream" leaves them out (`default_upstreams`).
"""

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import upstreams as builtin_upstreams
from benchmark.errors import MelbenchError

BUILTIN_DIR = Path(builtin_upstreams.__file__).parent
BASELINE = "mel"  # the spectrogram itself: what every learned upstream is measured against


def search_dirs() -> list[Path]:
    """Folders searched for upstream files: the built-in one, then `$MELBENCH_UPSTREAM_PATH`."""
    extra = [Path(p) for p in os.environ.get("MELBENCH_UPSTREAM_PATH", "").split(os.pathsep) if p]
    return [BUILTIN_DIR, *extra]


def available_upstreams(dirs: list[Path] | None = None) -> dict[str, Path]:
    """Map each discovered upstream name to its file.

    Args:
        dirs: folders to search (default `search_dirs()`); the first one naming an upstream wins.

    Returns:
        `{name: path}` sorted by name.
    """
    found: dict[str, Path] = {}
    for folder in dirs if dirs is not None else search_dirs():
        for path in sorted(Path(folder).glob("*.py")):
            if not path.stem.startswith("_"):
                found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def _import_file(name: str, path: Path) -> ModuleType:
    """Import an upstream file; built-in ones as `upstreams.<name>` so their helper imports work."""
    if path.parent == BUILTIN_DIR:
        return importlib.import_module(f"upstreams.{name}")
    module_name = f"melbench_upstream_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def load_module(name: str, dirs: list[Path] | None = None) -> ModuleType:
    """Import the module behind an upstream name or dotted module path.

    Args:
        name: a discovered name (`mel`) or a dotted module path (`mypkg.my_upstream`).
        dirs: folders to search (default `search_dirs()`).

    Returns:
        The module; it defines `load(**options)`.

    Raises:
        MelbenchError: unknown name (the known ones are listed) or a module without `load`.
    """
    found = available_upstreams(dirs)
    name = name.split(":", 1)[0]
    if name in found:
        module = _import_file(name, found[name])
        where = str(found[name])
    elif "." in name:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise MelbenchError(f"upstream module {name!r} cannot be imported ({err})") from None
        where = name
    else:
        raise MelbenchError(f"unknown upstream {name!r}; known: {', '.join(found) or 'none'}")
    if not callable(getattr(module, "load", None)):
        raise MelbenchError(f"{where}: defines no load(**options) function")
    return module


def load_upstream(name: str, options: dict[str, Any] | None = None, dirs: list[Path] | None = None) -> Any:
    """Load an upstream by name with options.

    Args:
        name: upstream name or dotted module path.
        options: keyword options for its `load`.
        dirs: folders to search (default `search_dirs()`).

    Returns:
        The upstream object (see `benchmark.upstream`).

    Raises:
        MelbenchError: unknown upstream or bad options.
    """
    module = load_module(name, dirs)
    options = module_options(name, module, options)
    try:
        return module.load(**options)
    except TypeError as err:
        raise MelbenchError(f"upstream {name!r}: bad options {options or {}} ({err})") from None


def module_options(name: str, module: ModuleType, options: dict[str, Any] | None) -> dict[str, Any]:
    """The options `load` gets: `options`, plus the one a `NAME:ARGUMENT` name fills.

    Args:
        name: upstream name, maybe `NAME:ARGUMENT`.
        module: its module.
        options: the given options.

    Returns:
        A new dict.

    Raises:
        MelbenchError: `NAME:ARGUMENT` for a module that defines no `ARGUMENT`.
    """
    options = dict(options or {})
    if ":" in name:
        argument = getattr(module, "ARGUMENT", None)
        if argument is None:
            raise MelbenchError(f"upstream {name.split(':')[0]!r} takes no NAME:ARGUMENT form (its module "
                                "defines no ARGUMENT)")
        options = {argument: name.split(":", 1)[1], **options}
    return options


def default_upstreams(dirs: list[Path] | None = None) -> list[str]:
    """The upstreams a run without `--upstreams` covers: every discovered one that needs no
    `NAME:ARGUMENT` (adapters such as `hear` wrap a model the user names)."""
    return [name for name in available_upstreams(dirs) if getattr(load_module(name, dirs), "ARGUMENT", None) is None]


def describe(name: str, dirs: list[Path] | None = None) -> str:
    """First line of the upstream module's docstring, read without importing it."""
    import ast

    path = available_upstreams(dirs)[name]
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
