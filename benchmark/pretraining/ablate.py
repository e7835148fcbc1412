"""`melbench ablate FILE`: choose a pretraining recipe on validation splits, never on test.

FILE (YAML, e.g. `docs/ablations/mockingjay_small.yaml`) names a self-supervised upstream, the
base of every arm (corpus, preset, steps), the tasks, label fractions and seeds to judge on, and
the arms: each a set of config overrides (`lr`, `warmup_steps`, `mask_proportion`, ...,
type-checked against the upstream's config). For each arm melbench pretrains a checkpoint
(resumable) and probes it as `melbench run` does, on the same labelled subsets as Mel, but
scores the validation split only: each number is the selected probe's validation headline
metric (`probe_valid_score`), averaged over seeds, and the arm's difference from Mel on the
same subsets. The test split is never scored, so a setting picked here leaves it untouched.
Writes OUT/ablation.md and OUT/ablation.json; a killed ablation resumes.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmark.atomic import atomic_write
from benchmark.config import build_config
from benchmark.errors import MelbenchError
from benchmark.pretraining.train_state import finished_record
from benchmark.registry import BASELINE
from benchmark.runs import read_runs
from benchmark.tasks import DEFAULT_TASKS_FILE, load_tasks


@dataclass(frozen=True)
class AblationConfig:
    """One ablation (see the module docstring)."""

    upstream: str
    arms: dict  # arm name -> config overrides (checked against the upstream's config by `load_ablation`)
    corpus: str = "mix"
    preset: str = "small"
    steps: int = 400
    tasks: tuple[str, ...] = ("pitch", "instrument")
    fractions: tuple[float, ...] = (0.01, 0.05)
    seeds: int = 3
    tasks_file: str = str(DEFAULT_TASKS_FILE)
    description: str = ""


def load_ablation(path: Path) -> AblationConfig:
    """Read and check an ablation file.

    Args:
        path: the YAML file.

    Returns:
        The config; every arm's overrides are checked against the upstream's config class.

    Raises:
        MelbenchError: unreadable file, unknown key, wrong type, or an override the upstream lacks.
    """
    from benchmark.pretraining.loop import pretrain_spec

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise MelbenchError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise MelbenchError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("arms"), dict) or not raw["arms"]:
        raise MelbenchError(f"{path}: expected a mapping with `upstream` and a non-empty `arms` mapping")
    cfg = build_config(AblationConfig, raw, what=f"{path} key")
    spec = pretrain_spec(cfg.upstream)
    for arm, overrides in cfg.arms.items():
        if not isinstance(overrides, dict):
            raise MelbenchError(f"{path}: arm {arm!r}: expected a mapping of config overrides, got {overrides!r}")
        spec.config(cfg.preset, overrides)  # type-checked; unknown keys rejected with the known ones
    return cfg


def _valid_scores(out_dir: Path, upstream: str) -> dict[tuple[str, float, int], float]:
    """(task, fraction, seed) -> the selected probe's validation score, from validation-only records."""
    return {(r["task"], r["fraction"], r["seed"]): r["probe_valid_score"]
            for r in read_runs(out_dir / "runs.jsonl") if r["upstream"] == upstream and r.get("validation_only")}


def run_ablation(cfg: AblationConfig, out_dir: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Pretrain and probe every arm on validation, then write the table.

    Args:
        cfg: the ablation.
        out_dir: where checkpoints, runs and the table go.
        progress: show progress bars.

    Returns:
        One row per (arm, task, fraction).
    """
    from benchmark.pretraining.loop import PretrainOptions, pretrain
    from benchmark.run import RunConfig, run_all

    tasks = load_tasks(cfg.tasks_file)
    unknown = [t for t in cfg.tasks if t not in tasks]
    if unknown:
        raise MelbenchError(f"ablation task {unknown[0]!r} is not in {cfg.tasks_file}; known: {', '.join(tasks)}")
    chosen = {t: tasks[t] for t in cfg.tasks}

    def probe(upstream: str, folder: Path, overrides: dict[str, Any]) -> None:
        run_all(RunConfig(upstreams=(upstream,), tasks=chosen, out_dir=folder, fractions=cfg.fractions,
                          seeds=cfg.seeds, layer_sweep=False, progress=progress, overrides=overrides,
                          validation_only=True))

    probe(BASELINE, out_dir / BASELINE, {})
    mel = _valid_scores(out_dir / BASELINE, BASELINE)
    rows = []
    for arm, overrides in cfg.arms.items():
        arm_dir = out_dir / "arms" / arm
        checkpoint = arm_dir / "checkpoint"
        record = finished_record(checkpoint)
        if record is None:
            print(f"ablation arm {arm}: pretraining {cfg.upstream} {cfg.preset} on {cfg.corpus} for {cfg.steps} "
                  f"steps with {overrides or 'the preset as it is'}", flush=True)
            pretrain(PretrainOptions(upstream=cfg.upstream, corpus=cfg.corpus, preset=cfg.preset, steps=cfg.steps,
                                     out=checkpoint, resume=True, overrides=dict(overrides), progress=progress))
            record = finished_record(checkpoint)
        probe(cfg.upstream, arm_dir, {cfg.upstream: {"checkpoint": str(checkpoint)}})
        scores = _valid_scores(arm_dir, cfg.upstream)
        for task in cfg.tasks:
            for fraction in cfg.fractions:
                keys = [(task, fraction, s) for s in range(cfg.seeds) if (task, fraction, s) in scores]
                diffs = np.array([scores[k] - mel[k] for k in keys if k in mel])
                rows.append({
                    "arm": arm, "overrides": overrides, "task": task, "fraction": fraction, "seeds": len(keys),
                    "valid": float(np.mean([scores[k] for k in keys])),
                    "mel_valid": float(np.mean([mel[k] for k in keys if k in mel])),
                    "diff": float(diffs.mean()), "diff_sd": float(diffs.std()),
                    "pretrain_val_loss": (record.get("val_loss") or [[None, None]])[-1][1],
                    "pretrain_s": record.get("pretrain_s"),
                })
    write_table(cfg, rows, out_dir)
    return rows


def write_table(cfg: AblationConfig, rows: list[dict[str, Any]], out_dir: Path) -> Path:
    """OUT/ablation.md (and .json): validation score and difference from Mel per arm, task, fraction.

    Returns:
        The Markdown file.
    """
    cells = sorted({(r["task"], r["fraction"]) for r in rows})
    header = "| arm | overrides | " + " | ".join(f"{t} {f:.0%}" for t, f in cells) + " | mean diff | pretraining val loss |"
    lines = [f"# Ablation: {cfg.upstream} {cfg.preset}, {cfg.steps} steps on {cfg.corpus}", "",
             cfg.description, "",
             f"Validation headline metric of the selected probe, mean over {cfg.seeds} seeds, and its difference from "
             "Mel on the same labelled subsets (test never scored).", "",
             header, "|" + "---|" * (len(cells) + 4)]
    mel = {(r["task"], r["fraction"]): r["mel_valid"] for r in rows}
    lines.append("| mel | - | " + " | ".join(f"{mel[c]:.3f}" for c in cells) + " | - | - |")
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = {(r["task"], r["fraction"]): r for r in rows if r["arm"] == arm}
        shown = ", ".join(f"{k}={v}" for k, v in mine[cells[0]]["overrides"].items()) or "preset"
        loss = mine[cells[0]]["pretrain_val_loss"]
        lines.append(f"| {arm} | {shown} | " + " | ".join(f"{mine[c]['valid']:.3f} ({mine[c]['diff']:+.3f})"
                                                          for c in cells)
                     + f" | {np.mean([mine[c]['diff'] for c in cells]):+.3f} | "
                     + (f"{loss:.4f}" if loss is not None else "?") + " |")
    path = out_dir / "ablation.md"
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out_dir / "ablation.json", "w") as f:
        json.dump({"config": asdict(cfg), "rows": rows}, f, indent=1)
    print("\n".join(lines[6:]))
    return path
