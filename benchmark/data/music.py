"""The `tagging`, `key` and `genre` datasets (10 s crops of rendered music21 pieces) and the
score half of the `music` pretraining corpus.

Every piece falls, by seeded hash, into one pool (test, valid, train, pretrain), shared by
all three datasets: splits are piece-disjoint and no pretraining piece is ever tested.
Pretraining pieces are rendered with the training soundfonts only, so the instrument test
soundfont (TimGM6mb) is unheard before testing.
"""

import json
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np
import soundfile as sf

from benchmark.atomic import atomic_write
from benchmark.data.common import (
    SR_HZ, BuildContext, rel, seeded_rng, unit_hash, write_audio, write_dataset, write_jsonl,
)
from benchmark.data.scores import COLLECTIONS, KEY_CLASSES, MAX_PIECE_S, Piece, converted, corpus_pieces, piece_hash
from benchmark.data.soundfonts import PROGRAM_FAMILY, SOUNDFONTS, TRAIN_SOUNDFONTS, Renderer, rms_dbfs

POOLS = (("test", 0.15), ("valid", 0.25), ("train", 0.6), ("pretrain", 1.0))
CROP_S = 10.0
SILENT_DBFS = -50.0
MAX_CHANNELS = 15  # 16 MIDI channels minus the drum channel


@dataclass(frozen=True)
class MusicConfig:
    """Sizes of the score-based datasets.

    Attributes:
        pieces: pieces per collection in each pool (fewer when a collection runs out).
        crops_per_piece: at most this many consecutive 10 s crops per piece.
        pretrain_max_s: pretraining renders are cut to this length.
        min_tag_positives: a tag is kept when at least this many training crops carry it.
        workers: processes converting scores (the slow step).
    """

    pieces: dict[str, int]
    crops_per_piece: int
    pretrain_max_s: float
    min_tag_positives: int
    workers: int


def music_config(quick: bool) -> MusicConfig:
    """Default sizes."""
    if quick:
        return MusicConfig({"train": 2, "valid": 1, "test": 1, "pretrain": 1}, 1, 30.0, 2, 2)
    return MusicConfig({"train": 50, "valid": 10, "test": 15, "pretrain": 40}, 3, 60.0, 10, 2)


def select_pieces(ctx: BuildContext, config: MusicConfig) -> list[tuple[str, Piece, dict[str, Any]]]:
    """Pick and convert the pieces of every (collection, pool).

    Returns:
        (pool, piece, converted score) in a deterministic order; failed or empty scores are
        skipped and the next piece in the seeded order takes their place.
    """
    queues: dict[tuple[str, str], list[Piece]] = {}
    for collection, pieces in corpus_pieces(ctx.seed).items():
        for pool, _ in POOLS:
            queues[(collection, pool)] = []
        for piece in pieces:
            u = unit_hash(ctx.seed, "piece-pool", piece.key)
            queues[(collection, next(name for name, hi in POOLS if u < hi))].append(piece)
    chosen: dict[tuple[str, str], list[tuple[Piece, dict[str, Any]]]] = {slot: [] for slot in queues}
    # Convert in rounds, each asking only for what is still missing: scores that fail to
    # convert are replaced by the next piece in the seeded order, and nothing extra is parsed.
    # spawn, not fork: forking a process that has used torch or FluidSynth threads can hang
    with get_context("spawn").Pool(config.workers) as workers:
        while True:
            batch = []
            for (collection, pool), queue in queues.items():
                missing = config.pieces[pool] - len(chosen[(collection, pool)])
                batch += [((collection, pool), queue.pop(0)) for _ in range(min(missing, len(queue)))]
            if not batch:
                break
            scores = workers.starmap(converted, [(piece, ctx.cache) for _, piece in batch], chunksize=1)
            for (slot, piece), score in zip(batch, scores):
                if "failed" not in score and score["events"]:
                    chosen[slot].append((piece, score))
    return [(pool, piece, score) for (_, pool), got in chosen.items() for piece, score in got]


def render_piece(renderer: Renderer, ctx: BuildContext, piece: Piece, score: dict[str, Any],
                 soundfonts: tuple[str, ...], max_s: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Render a piece with seeded instrumentation and tempo.

    Returns:
        (samples, recipe) where the recipe records soundfont, programs and tempo.
    """
    rng = seeded_rng(ctx.seed, "render", piece.key)
    soundfont = soundfonts[int(rng.integers(len(soundfonts)))]
    n_parts = min(score["n_parts"], MAX_CHANNELS)
    melodic = sorted(PROGRAM_FAMILY)
    programs = [int(melodic[i]) for i in rng.integers(len(melodic), size=n_parts)]
    qpm = score["qpm"] or float(rng.uniform(90, 140))
    s_per_q = 60.0 / qpm
    notes = [(on * s_per_q, off * s_per_q, part % MAX_CHANNELS, pitch)
             for on, off, part, pitch in score["events"] if on * s_per_q < max_s]
    dur_s = min(max(off for _, off, _, _ in notes) + 1.0, max_s)
    recipe = {"soundfont": soundfont, "programs": programs, "qpm": round(qpm, 2)}
    return renderer.events(soundfont, programs, notes, dur_s), recipe


def _crops(renderer_box: list, ctx: BuildContext, config: MusicConfig, piece: Piece, score: dict[str, Any]) -> dict[str, Any]:
    """Render a downstream piece into up to `crops_per_piece` 10 s crops (silent ones dropped).

    A JSON sidecar (written after the crops) records the recipe, so a resumed build skips
    finished pieces without rendering them again.

    Returns:
        {"recipe": {...}, "crops": [crop index, ...]}.
    """
    pid = f"{piece.collection}-{piece_hash(piece)}"
    sidecar = ctx.audio / "crops" / f"{pid}.json"
    if sidecar.exists():
        return json.loads(sidecar.read_text())
    if not renderer_box:
        renderer_box.append(Renderer())
    wave, recipe = render_piece(renderer_box[0], ctx, piece, score, tuple(SOUNDFONTS),
                                min(config.crops_per_piece * CROP_S, MAX_PIECE_S))
    n_crops = max(1, min(config.crops_per_piece, int(len(wave) / SR_HZ // CROP_S)))
    kept = []
    for k in range(n_crops):
        crop = np.zeros(int(CROP_S * SR_HZ), np.float32)
        part = wave[int(k * CROP_S * SR_HZ) : int((k + 1) * CROP_S * SR_HZ)]
        crop[: len(part)] = part
        if rms_dbfs(crop) >= SILENT_DBFS:
            write_audio(ctx.audio / "crops" / f"{pid}-{k}.flac", crop)
            kept.append(k)
    result = {"recipe": recipe, "crops": kept}
    with atomic_write(sidecar, "w") as f:
        json.dump(result, f)
    return result


def build_music(ctx: BuildContext) -> dict[str, int]:
    """Render crops and pretraining pieces; write `tagging`, `key`, `genre` and the score part
    of the `music` corpus (`parts/scores.jsonl`).

    Returns:
        {"pieces": pieces used, "crops": crops in the datasets}.
    """
    config = music_config(ctx.quick)
    renderer_box: list[Renderer] = []  # created on first need: a finished build renders nothing
    crops, pretrain = [], []
    for pool, piece, score in select_pieces(ctx, config):
        pid = f"{piece.collection}-{piece_hash(piece)}"
        if pool == "pretrain":
            path = ctx.audio / "pieces" / f"{pid}.flac"
            if not path.exists():
                if not renderer_box:
                    renderer_box.append(Renderer())
                wave, _ = render_piece(renderer_box[0], ctx, piece, score, TRAIN_SOUNDFONTS, config.pretrain_max_s)
                write_audio(path, wave)
            pretrain.append({"id": pid, "path": rel(path, ctx.root), "group": piece.key,
                             "source_item": piece.key, "collection": piece.collection,
                             "duration_s": sf.info(str(path)).duration})
            continue
        done = _crops(renderer_box, ctx, config, piece, score)
        families = sorted({PROGRAM_FAMILY[p] for p in done["recipe"]["programs"]})
        for k in done["crops"]:
            crops.append({"id": f"{pid}-{k}", "path": ctx.audio / "crops" / f"{pid}-{k}.flac", "split": pool,
                          "group": piece.key, "source_item": piece.key, "duration_s": CROP_S,
                          "collection": piece.collection, "title": score["title"], "key": score["key"],
                          **done["recipe"], "tags": score["tags"] + [f"instrument:{f}" for f in families]})
    _write_crop_datasets(ctx, config, crops)
    write_jsonl(ctx.root / "parts" / "scores.jsonl", pretrain)
    return {"pieces": len({c["group"] for c in crops}) + len(pretrain), "crops": len(crops)}


def _write_crop_datasets(ctx: BuildContext, config: MusicConfig, crops: list[dict[str, Any]]) -> None:
    """Write `genre`, `key` and `tagging` from the same crops (paths made relative per folder)."""
    source = "music21 corpus scores rendered with FluidR3_GM, MuseScore_General_Lite, TimGM6mb"

    def write(name: str, items: list[dict[str, Any]], labels: str, classes: list[str], description: str) -> None:
        folder = ctx.root / name
        records = [{**c, "path": rel(c["path"], folder)} for c in items]
        meta = {"name": name, "level": "clip", "labels": labels, "classes": classes, "sr_hz": SR_HZ,
                "description": description, "source": source}
        write_dataset(folder, meta, records)

    write("genre", [{**c, "labels": [c["collection"]]} for c in crops], "multiclass", sorted(COLLECTIONS),
          "collection/style of 10 s crops (8 classes), piece-disjoint splits")
    keyed = [{**c, "labels": [c["key"]]} for c in crops if c["key"]]
    write("key", keyed, "multiclass", list(KEY_CLASSES),
          "24-class key (mir_eval form, e.g. 'A minor') of 10 s crops, piece-disjoint splits")
    counts: dict[str, int] = {}
    for c in crops:
        if c["split"] == "train":
            for tag in set(c["tags"]):
                counts[tag] = counts.get(tag, 0) + 1
    kept = sorted(t for t, n in counts.items() if n >= config.min_tag_positives)
    write("tagging", [{**c, "labels": sorted(set(c["tags"]) & set(kept))} for c in crops], "multilabel", kept,
          f"multi-label tags of 10 s crops (tags with >= {config.min_tag_positives} training positives kept)")
