"""Unlabelled pretraining corpora (`music`, `speech`, `mix`) built by `melbench data build`.

Each corpus is a folder `$MELBENCH_HOME/data/{full,quick}/corpora/<name>/` with a
`manifest.jsonl` (one record per file: id, path relative to the folder, group, source_item,
duration_s) and a `.done` marker written when the build finished.
"""

import json
from pathlib import Path
from typing import Any

from benchmark.data.common import data_root, rel, write_jsonl
from benchmark.errors import MelbenchError

CORPORA = ("music", "speech", "mix")


def corpus_dir(name: str, quick: bool = False, home: Path | None = None) -> Path:
    """Folder of corpus `name` (not checked)."""
    return data_root(quick, home) / "corpora" / name


def corpus_records(name: str, quick: bool = False, home: Path | None = None) -> list[dict[str, Any]]:
    """The manifest records of a built corpus, with `path` resolved to an absolute `Path`.

    Args:
        name: "music", "speech" or "mix".
        quick: the quick build.
        home: overrides `$MELBENCH_HOME`.

    Raises:
        MelbenchError: unknown name, or the corpus is not built.
    """
    if name not in CORPORA:
        raise MelbenchError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    folder = corpus_dir(name, quick, home)
    manifest = folder / "manifest.jsonl"
    if not (manifest.exists() and (folder / ".done").exists()):
        flag = " --quick" if quick else ""
        raise MelbenchError(f"corpus {name!r} is not built; run `melbench data build{flag}`")
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return [{**r, "path": (folder / r["path"]).resolve()} for r in records]


def corpus_files(name: str, quick: bool = False) -> list[Path]:
    """Audio files of a pretraining corpus.

    Args:
        name: "music", "speech" or "mix".
        quick: the small corpus of `melbench data build --quick`.

    Returns:
        Absolute paths of 16 kHz mono FLAC files, in manifest order.

    Raises:
        MelbenchError: unknown name, or the corpus is not built.
    """
    return [r["path"] for r in corpus_records(name, quick)]


def assemble(root: Path) -> dict[str, int]:
    """Write the corpus manifests under `root/corpora` from the builders' parts.

    `music` = `parts/scores.jsonl` + `parts/games.jsonl` (when built), `speech` =
    `parts/speech.jsonl`, `mix` = both. Part paths are relative to `root`.

    Args:
        root: the build root (`data/full` or `data/quick`).

    Returns:
        Files per corpus.
    """
    def part(name: str) -> list[dict[str, Any]]:
        path = root / "parts" / f"{name}.jsonl"
        if not path.exists():
            return []
        return [{**r, "path": root / r["path"]} for r in map(json.loads, path.read_text().splitlines()) if r]

    corpora = {"music": part("scores") + part("games"), "speech": part("speech")}
    corpora["mix"] = corpora["music"] + corpora["speech"]
    for name, records in corpora.items():
        folder = root / "corpora" / name
        write_jsonl(folder / "manifest.jsonl", [{**r, "path": rel(r["path"], folder)} for r in records])
    return {name: len(records) for name, records in corpora.items()}
