"""The `phones` dataset (frame-level phone labels) and the `speech` pretraining corpus.

Every fortune sentence falls, by seeded hash, into one pool: test, valid, train or pretrain,
so no pretraining sentence is ever a test sentence. Train and valid are spoken by the male
diphone voices kal and ked; test by kal (seen voice) and slt (female HTS voice, unseen in
training and in pretraining).
"""

import json
from dataclasses import dataclass
from typing import Any

from benchmark.data.common import SR_HZ, BuildContext, rel, unit_hash, write_dataset, write_jsonl
from benchmark.data.speech import PHONE_CLASSES, fortune_sentences, sentence_id, synthesise

# Upper bounds of each pool on the sentence's hash in [0, 1).
POOLS = (("test", 0.1), ("valid", 0.2), ("train", 0.5), ("pretrain", 1.0))
SPLIT_VOICES = {"train": ("kal", "ked"), "valid": ("kal", "ked"), "test": ("kal", "slt")}
PRETRAIN_VOICES = ("kal", "ked")  # one per sentence, by hash; slt stays unheard before testing
CHUNK = 200  # sentences per festival process: progress is kept between chunks


@dataclass(frozen=True)
class SpeechConfig:
    """Sentences per pool (at most: a pool may hold fewer)."""

    train: int
    valid: int
    test: int
    pretrain: int


def speech_config(quick: bool) -> SpeechConfig:
    """Default sizes."""
    return SpeechConfig(24, 8, 8, 40) if quick else SpeechConfig(1200, 200, 300, 2500)


def sentence_pools(sentences: list[str], seed: int) -> dict[str, list[str]]:
    """Assign each sentence to one pool by its seeded hash.

    Returns:
        pool name -> sentences, each list ordered by a second seeded hash (so a size cap picks
        a seeded random subset that grows, not changes, with the size).
    """
    pools: dict[str, list[str]] = {name: [] for name, _ in POOLS}
    for text in sentences:
        u = unit_hash(seed, "sentence-pool", sentence_id(text))
        pools[next(name for name, hi in POOLS if u < hi)].append(text)
    return {k: sorted(v, key=lambda t: unit_hash(seed, "sentence-order", sentence_id(t))) for k, v in pools.items()}


def _speak(ctx: BuildContext, wanted: dict[str, dict[str, str]]) -> None:
    """Synthesise whatever of `wanted` (voice -> id -> text) has no finished sidecar yet."""
    for voice, texts in wanted.items():
        folder = ctx.audio / "speech" / voice
        folder.mkdir(parents=True, exist_ok=True)
        todo = {uid: t for uid, t in texts.items() if not (folder / f"{uid}.json").exists()}
        ids = sorted(todo)
        for i in range(0, len(ids), CHUNK):
            synthesise(voice, {uid: todo[uid] for uid in ids[i : i + CHUNK]}, folder)


def build_speech(ctx: BuildContext) -> dict[str, int]:
    """Synthesise; write the `phones` dataset and the `speech` corpus part (`parts/speech.jsonl`).

    Returns:
        {"dropped": utterances festival failed on}.
    """
    config = speech_config(ctx.quick)
    pools = sentence_pools(fortune_sentences(), ctx.seed)
    plan: list[tuple[str, str, str]] = []  # (split or "pretrain", voice, text)
    for split in ("train", "valid", "test"):
        for text in pools[split][: getattr(config, split)]:
            plan += [(split, voice, text) for voice in SPLIT_VOICES[split]]
    for text in pools["pretrain"][: config.pretrain]:
        u = unit_hash(ctx.seed, "pretrain-voice", sentence_id(text))
        plan.append(("pretrain", PRETRAIN_VOICES[int(u * len(PRETRAIN_VOICES))], text))
    wanted: dict[str, dict[str, str]] = {}
    for _, voice, text in plan:
        wanted.setdefault(voice, {})[sentence_id(text)] = text
    _speak(ctx, wanted)

    folder = ctx.root / "phones"
    records, corpus_records, dropped = [], [], 0
    for split, voice, text in plan:
        sid = sentence_id(text)
        audio = ctx.audio / "speech" / voice / f"{sid}.flac"
        sidecar = audio.with_suffix(".json")
        if not sidecar.exists():
            dropped += 1
            continue
        segments = json.loads(sidecar.read_text())
        common: dict[str, Any] = {"id": f"{voice}-{sid}", "group": sid, "duration_s": segments[-1][1],
                                  "voice": voice, "text": text, "source_item": f"sentence:{sid}"}
        if split == "pretrain":
            corpus_records.append({**common, "path": rel(audio, ctx.root)})
        else:
            records.append({**common, "path": rel(audio, folder), "split": split, "segments": segments})
    meta = {"name": "phones", "level": "frame", "labels": "multiclass", "classes": list(PHONE_CLASSES),
            "frame_s": 0.01, "sr_hz": SR_HZ, "source": "Festival voices kal, ked, slt; sentences from Debian fortunes",
            "description": "phone of each 10 ms frame (39 CMUdict phones + sil); test: unseen sentences, unseen voice slt"}
    write_dataset(folder, meta, records)
    write_jsonl(ctx.root / "parts" / "speech.jsonl", corpus_records)
    return {"dropped": dropped}
