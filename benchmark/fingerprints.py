"""Content fingerprints, so that results follow every input that changed them.

* `content_sha256(path)`: a file's sha256, memoised by (path, size, modification time, inode)
  in `$MELBENCH_HOME/hashes.sqlite`, so each file is hashed once per change, not once per
  upstream, task and run. Files modified in the last `RACY_NS` are never memoised (two writes
  in one clock tick can leave the same modification time).
* `path_sha256(path)`: a checkpoint file, or a folder's files (names and contents).
* `checkpoint_sha256(path)`: what `load` reads from a checkpoint. For melbench's own pretraining
  folders, the weights and `config.json` without its wall-clock time, so that pretraining the
  same weights again (a new machine, a new session) gives the same fingerprint and a resumed
  `melbench run` keeps the records made with them; any other checkpoint whole (`path_sha256`).
* `dataset_fingerprint(dataset)`: labels, splits, groups and classes of every item, and the
  content hash of its audio; any changed label, split or audio file changes it.
* `code_fingerprint(upstream, options)`: the upstream module's source and that of every module
  it imports from the same source trees (melbench's packages, the module's own package), plus
  the name and version of each installed package it imports (`torch==2.14.1`).
* `is_verified` / `mark_verified`: a cache entry checked whole and finite at this (size,
  modification time) is not read again to check it; a changed entry is checked again.

The memo is a cache of facts about files: when it cannot be opened (read-only home, damaged
file) every hash is computed afresh and nothing else changes.
"""

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from benchmark.home import melbench_home
from benchmark.pretraining.train_state import CONFIG_FILE, MODEL_FILE
from benchmark.registry import load_module, module_options

MEMO_FILE = "hashes.sqlite"
# `config.json` facts that are measurements of a pretraining run, not of the model it trained:
# its wall time, and its length (a snapshot's weights already say what the run did to them;
# without this the untrained step-0 control of a 400-step run and of a 12,800-step one would
# be two models, extracted and probed twice)
MEASURED_KEYS = ("pretrain_s", "total_steps")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("benchmark", "upstreams", "downstreams")

_connections: dict[Path, sqlite3.Connection | None] = {}


def _memo() -> sqlite3.Connection | None:
    """The memo database of the current `$MELBENCH_HOME` (None where it cannot be used)."""
    path = melbench_home() / MEMO_FILE
    if path not in _connections:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path, timeout=30, isolation_level=None)  # autocommit: one row, one write
            con.execute("PRAGMA journal_mode=WAL")  # a kill never damages it; readers never wait
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS sha256 (path TEXT PRIMARY KEY, stamp TEXT, digest TEXT)")
            con.execute("CREATE TABLE IF NOT EXISTS verified (path TEXT PRIMARY KEY, stamp TEXT)")
        except sqlite3.Error:
            con = None
        _connections[path] = con
    return _connections[path]


# Modification times advance in clock ticks of a few milliseconds, so a file written twice in
# one tick keeps its time: a stamp is memoised only once the file is older than this (as git
# does with "racily clean" entries); younger files are hashed or checked every time.
RACY_NS = 100_000_000


def _stamp(path: Path) -> str | None:
    """What changes when a file's content may have changed; None while it is too young to tell."""
    st = path.stat()
    if time.time_ns() - st.st_mtime_ns < RACY_NS:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _lookup(table: str, path: Path) -> tuple | None:
    con = _memo()
    if con is None:
        return None
    try:
        row = con.execute(f"SELECT * FROM {table} WHERE path = ?", (str(path),)).fetchone()
    except sqlite3.Error:
        return None
    return row


def _store(table: str, values: tuple) -> None:
    con = _memo()
    if con is None:
        return
    try:
        marks = ", ".join("?" * len(values))
        con.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", values)
    except sqlite3.Error:  # a memo that cannot be written only costs a re-hash later
        pass


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (not memoised; see `content_sha256`).

    Args:
        path: the file.
        chunk_bytes: read size.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, modification time, inode).

    Args:
        path: the file.

    Returns:
        The hex digest.

    Raises:
        OSError: the file cannot be read.
    """
    path = Path(path).resolve()
    stamp = _stamp(path)
    row = _lookup("sha256", path) if stamp else None
    if row is not None and row[1] == stamp:
        return row[2]
    digest = file_sha256(path)
    if stamp:
        _store("sha256", (str(path), stamp, digest))
    return digest


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, sorted by name).

    Args:
        path: a checkpoint file or folder.

    Returns:
        The hex digest.
    """
    path = Path(path)
    if not path.is_dir():
        return content_sha256(path)
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}\0{content_sha256(f)}\n".encode())
    return digest.hexdigest()


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of what `load` reads from a checkpoint.

    A melbench pretraining folder (`model.safetensors` beside a `config.json` record naming
    its `upstream`, `step` and `config`) is fingerprinted by its weights and its record less
    `MEASURED_KEYS`: the resumable optimiser state and the snapshots under `steps/` (variants
    with folders of their own) do not change its features, nor do the run's wall time and length.
    Anything else (an s3prl file, a Hugging Face folder) is hashed whole.

    Args:
        path: a checkpoint file or folder.

    Returns:
        The hex digest.
    """
    path = Path(path)
    model, config = path / MODEL_FILE, path / CONFIG_FILE
    record = None
    if path.is_dir() and model.is_file() and config.is_file():
        try:
            record = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
    if not isinstance(record, dict) or not {"upstream", "step", "config"} <= record.keys():
        return path_sha256(path)
    facts = {k: v for k, v in record.items() if k not in MEASURED_KEYS}
    digest = hashlib.sha256(f"{MODEL_FILE}\0{content_sha256(model)}\n".encode())
    digest.update(json.dumps(facts, sort_keys=True).encode())
    return digest.hexdigest()


def is_verified(path: Path) -> bool:
    """Whether `path` was checked (whole, finite) at its present size and modification time."""
    try:
        stamp = _stamp(Path(path))
    except OSError:
        return False
    row = _lookup("verified", Path(path)) if stamp else None
    return row is not None and row[1] == stamp


def mark_verified(path: Path) -> None:
    """Record that `path` was just checked whole and finite (not while it is too young to tell)."""
    stamp = _stamp(Path(path))
    if stamp:
        _store("verified", (str(path), stamp))


def dataset_fingerprint(dataset: Any) -> str:
    """What a dataset's results depend on: every item's labels, split, group and audio content.

    Args:
        dataset: a `benchmark.data.manifest.Dataset`.

    Returns:
        16 hex digits. An audio file that cannot be read counts as "unreadable" (its item is
        skipped at extraction), so the fingerprint of a dataset with a bad file is stable.
    """
    digest = hashlib.sha256()
    head = {"level": dataset.level, "labels": dataset.labels, "classes": list(dataset.classes)}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for item in sorted(dataset.items, key=lambda i: i.id):
        try:
            audio = content_sha256(item.path)
        except OSError:
            audio = "unreadable"
        row = [item.id, item.split, item.group, list(item.labels), [list(s) for s in item.segments],
               item.extra, audio]
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()[:16]


def _module_path(name: str, roots: list[Path]) -> list[Path]:
    """The files importing module `name` runs, when it lives under one of `roots`: the
    packages' `__init__.py` files on the way and the module itself."""
    for root in roots:
        parts, found = name.split("."), []
        for depth in range(1, len(parts) + 1):
            base = root.joinpath(*parts[:depth])
            if (base / "__init__.py").is_file():
                found.append(base / "__init__.py")
            elif depth == len(parts) and base.with_suffix(".py").is_file():
                found.append(base.with_suffix(".py"))
            elif not base.is_dir():
                break
        else:
            if found:
                return found
    return []


def _root_of(name: str) -> Path | None:
    """The folder that holds top-level module `name`'s source, if it has one."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        return None
    origin = Path(spec.origin)
    return origin.parent.parent if origin.name == "__init__.py" else origin.parent


_packages_distributions = functools.cache(importlib.metadata.packages_distributions)


@functools.cache
def _distribution(top: str) -> str | None:
    """`name==version` of the installed distribution that provides top-level module `top`."""
    names = _packages_distributions().get(top)
    if not names:
        return None
    return f"{names[0]}=={importlib.metadata.version(names[0])}"


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module `path` (module `module`) imports, at any depth of its code."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([p for p in parent if p] + ([node.module] if node.module else []))
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def source_closure(path: Path, module: str) -> tuple[list[Path], list[str]]:
    """The source files a module runs and the installed packages it uses.

    Args:
        path: the module's file.
        module: its dotted name (for relative imports).

    Returns:
        (sorted source files, sorted `name==version` strings). Hashed as files: melbench's
        packages, the module's own top-level package (installed or not) and any other module
        no installed distribution provides; recorded by version: other installed packages;
        left out: the standard library.
    """
    own = module.split(".")[0]
    roots = {top: PROJECT_ROOT for top in PROJECT_PACKAGES}
    files: dict[Path, str] = {path.resolve(): module}
    queue, packages = [(path.resolve(), module)], set()
    while queue:
        current, name = queue.pop()
        for imported in sorted(_imports(current, name)):
            top = imported.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if top not in roots:
                dist = None if top == own else _distribution(top)
                if dist:  # another installed package: its version stands for its code
                    packages.add(dist)
                    continue
                roots[top] = _root_of(top)
            found = _module_path(imported, [roots[top]]) if roots[top] else []
            for f in found:
                f = f.resolve()
                if f not in files:
                    files[f] = imported
                    queue.append((f, imported))
    return sorted(files), sorted(packages)


def code_fingerprint(upstream: str, options: dict[str, Any]) -> str:
    """What an upstream's features depend on in code.

    Args:
        upstream: upstream name, `NAME:ARGUMENT` or dotted module path.
        options: its `load` options; the option names its module lists in `CODE_OPTIONS`
            (e.g. the `hear` adapter's `target`) are module paths whose code counts too.

    Returns:
        16 hex digits over the source files' relative names and contents and the packages' versions.
    """
    module = load_module(upstream)
    options = module_options(upstream, module, options)
    starts = [(Path(module.__file__), module.__name__)]
    for option in getattr(module, "CODE_OPTIONS", ()):
        target = options.get(option)
        try:
            spec = importlib.util.find_spec(str(target)) if target else None
        except (ImportError, ValueError):  # not importable: `load` says so in one line
            spec = None
        if spec is not None and spec.origin:
            starts.append((Path(spec.origin), str(target)))
    digest = hashlib.sha256()
    for path, name in starts:
        files, packages = source_closure(path, name)
        for f in files:
            shown = f.relative_to(PROJECT_ROOT) if f.is_relative_to(PROJECT_ROOT) else f.name
            digest.update(f"{shown}\0{content_sha256(f)}\n".encode())
        digest.update("\n".join(packages).encode())
    return digest.hexdigest()[:16]
