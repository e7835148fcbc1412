"""The `instrument` and `pitch` datasets: NSynth-style 4 s single notes from GM soundfonts.

Splits: test is every note of TimGM6mb, a soundfont never used in training (instrument-
disjoint, as NSynth's test set). Train and valid both come from FluidR3 and MuseScore_General
(which share samples, so they stay on one side), split by GM program: a valid program is never
a train program, in either soundfont.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.data.common import SR_HZ, BuildContext, rel, unit_hash, write_audio, write_dataset
from benchmark.data.soundfonts import (
    FAMILIES, PROGRAM_FAMILY, TEST_SOUNDFONT, TRAIN_SOUNDFONTS, Renderer, pitch_range, rms_dbfs,
)

NOTE_DUR_S = 4.0
NOTE_HOLD_S = 3.0
VELOCITY = 100
SILENT_DBFS = -55.0  # renders quieter than this are dropped (a program outside its samples' range)


@dataclass(frozen=True)
class NotesConfig:
    """Sizes of the note datasets.

    Attributes:
        programs_per_family: GM programs used per family (None: all).
        pitch_step: pitches on a grid of this many semitones inside each program's range.
        valid_fraction: share of each family's programs held out for validation.
    """

    programs_per_family: int | None
    pitch_step: int
    valid_fraction: float = 0.2


def notes_config(quick: bool) -> NotesConfig:
    """Default sizes: quick uses 2 programs per family, every 6th pitch."""
    return NotesConfig(programs_per_family=2, pitch_step=6) if quick else NotesConfig(None, pitch_step=2)


def chosen_programs(config: NotesConfig, seed: int) -> dict[int, str]:
    """Programs to render -> split side ("train" or "valid"), stratified by family.

    Each family with at least two chosen programs gives round(valid_fraction * n) (at least
    one) programs to valid, picked by seeded hash so the choice is stable.
    """
    sides: dict[int, str] = {}
    for family in FAMILIES:
        programs = sorted((p for p, f in PROGRAM_FAMILY.items() if f == family), key=lambda p: unit_hash(seed, "prog", p))
        programs = programs[: config.programs_per_family] if config.programs_per_family else programs
        n_valid = max(1, round(config.valid_fraction * len(programs))) if len(programs) >= 2 else 0
        for i, p in enumerate(programs):
            sides[p] = "valid" if i < n_valid else "train"
    return sides


def _pitches(program: int, step: int) -> list[int]:
    lo, hi = pitch_range(program)
    return [p for p in range(lo, hi + 1) if p % step == 0]


def build_notes(ctx: BuildContext) -> dict[str, int]:
    """Render the notes and write the `instrument` and `pitch` datasets.

    Args:
        ctx: build context.

    Returns:
        {"rendered": notes rendered now, "silent": renders dropped as near-silent}.
    """
    config = notes_config(ctx.quick)
    sides = chosen_programs(config, ctx.seed)
    renderer: Renderer | None = None  # created only when something needs rendering
    records: list[dict[str, Any]] = []
    counts = {"rendered": 0, "silent": 0}
    silent_list = ctx.cache / "silent_notes.txt"
    silent = set(silent_list.read_text().split()) if silent_list.exists() else set()
    for soundfont in (*TRAIN_SOUNDFONTS, TEST_SOUNDFONT):
        for program, side in sorted(sides.items()):
            for pitch in _pitches(program, config.pitch_step):
                item = f"{soundfont}-p{program:03d}-n{pitch:03d}"
                path = ctx.audio / "notes" / f"{item}.flac"
                if item in silent:
                    continue
                if not path.exists():
                    renderer = renderer or Renderer()
                    wave = renderer.note(soundfont, program, pitch, VELOCITY, NOTE_HOLD_S, NOTE_DUR_S)
                    if rms_dbfs(wave) < SILENT_DBFS:
                        silent.add(item)
                        counts["silent"] += 1
                        continue
                    write_audio(path, wave)
                    counts["rendered"] += 1
                records.append({
                    "id": item, "path": path, "split": "test" if soundfont == TEST_SOUNDFONT else side,
                    "group": f"{soundfont}/{program}" if soundfont == TEST_SOUNDFONT else f"train-sf/{program}",
                    "duration_s": NOTE_DUR_S, "family": PROGRAM_FAMILY[program], "program": program,
                    "pitch": pitch, "velocity": VELOCITY, "soundfont": soundfont,
                    "source_item": f"note:{soundfont}/{program}/{pitch}",
                })
    silent_list.parent.mkdir(parents=True, exist_ok=True)
    silent_list.write_text("\n".join(sorted(silent)) + "\n")
    _write(ctx.root / "instrument", records, "family", list(FAMILIES),
           "NSynth-style instrument family of 4 s single notes (11 classes); test soundfont unseen in training")
    pitches = sorted({r["pitch"] for r in records})
    _write(ctx.root / "pitch", records, "pitch", [str(p) for p in pitches],
           "MIDI pitch of 4 s single notes (same audio as `instrument`)")
    return counts


def _write(folder: Path, records: list[dict[str, Any]], label_key: str, classes: list[str], description: str) -> None:
    out = [{**r, "path": rel(r["path"], folder), "labels": [str(r[label_key])]} for r in records]
    meta = {"name": folder.name, "level": "clip", "labels": "multiclass", "classes": classes,
            "description": description, "source": "FluidR3_GM, MuseScore_General_Lite, TimGM6mb via FluidSynth",
            "sr_hz": SR_HZ}
    write_dataset(folder, meta, out)
