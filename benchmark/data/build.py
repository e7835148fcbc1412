"""`melbench data build`: run every builder once (done-markers make reruns free and crashed
runs resumable), assemble the pretraining corpora, check for leaks, summarise."""

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from benchmark.data.common import DATASETS, BuildContext, data_root, is_done, mark_done
from benchmark.data.corpora import CORPORA, assemble
from benchmark.data.leaks import check_pretraining_disjoint, check_split_groups
from benchmark.data.manifest import load_dataset_dir

# Bump when a builder's output changes, so old builds are redone rather than mixed with new ones.
BUILD_VERSION = 1


@dataclass
class BuildReport:
    """What a build did."""

    root: Path
    steps: dict[str, dict] = field(default_factory=dict)  # step -> its counts, or {"skipped": reason}
    seconds: dict[str, float] = field(default_factory=dict)


def _steps(games: bool) -> dict[str, Callable[[BuildContext], dict]]:
    from benchmark.data.gamemusic import build_games
    from benchmark.data.music import build_music
    from benchmark.data.notes import build_notes
    from benchmark.data.phones import build_speech

    steps = {"notes": build_notes, "speech": build_speech, "music": build_music}
    if games:
        steps["games"] = build_games
    return steps


def build(quick: bool = False, seed: int = 0, games: bool | None = None, home: Path | None = None,
          log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> BuildReport:
    """Build (or complete) the embedded datasets and pretraining corpora.

    Args:
        quick: the small build for tests and CI.
        seed: every random choice derives from it.
        games: include the Debian game-music recordings (downloaded with `apt-get download`);
            default: in the full build only.
        home: overrides `$MELBENCH_HOME`.
        log: where progress lines go.

    Returns:
        The report (steps run or skipped, with timings).

    Raises:
        MelbenchError: a required package is missing (named with its install command), or a
            leak check failed.
    """
    use_games = (not quick) if games is None else games
    ctx = BuildContext(data_root(quick, home), quick, seed)
    report = BuildReport(ctx.root)
    ran_any = False
    for name, step in _steps(use_games).items():
        recipe = {"step": name, "version": BUILD_VERSION, "seed": seed, "quick": quick}
        marker = ctx.root / ".steps" / name
        if is_done(marker, recipe):
            report.steps[name] = {"skipped": "already built"}
            continue
        log(f"data build: {name} ...")
        start = time.perf_counter()
        report.steps[name] = step(ctx)
        report.seconds[name] = time.perf_counter() - start
        mark_done(marker, recipe)
        ran_any = True
        log(f"data build: {name} done in {report.seconds[name]:.1f} s: {report.steps[name]}")
    if not use_games:
        log("data build: game-music recordings not included (the full build, or --games, fetches them "
            "with `apt-get download`, installing nothing)")
    final = {"step": "corpora", "version": BUILD_VERSION, "seed": seed, "quick": quick, "games": use_games}
    if ran_any or not is_done(ctx.root / "corpora", final):
        assemble(ctx.root)
        datasets = [load_dataset_dir(ctx.root / name) for name in DATASETS]
        for dataset in datasets:
            check_split_groups(dataset)
        manifests = [ctx.root / "corpora" / c / "manifest.jsonl" for c in CORPORA]
        check_pretraining_disjoint(datasets, manifests)
        for name in CORPORA:
            mark_done(ctx.root / "corpora" / name, final)
        mark_done(ctx.root / "corpora", final)
    return report

