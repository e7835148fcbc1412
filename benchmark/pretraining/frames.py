"""Pretraining data: corpus resolution, precomputed log-Mel, a fixed split, seeded random crops.

Every file's log-Mel frames are computed once and kept in memory (80 bins x 100 frames/s x
4 bytes = 32 kB per second of audio, about 115 MB per hour). They are also cached on disk,
under `$MELBENCH_HOME/logmel/<key>/`, so the next upstream pretrained on the same corpus reads
them in a second instead of recomputing them (about 2 minutes for the default corpus on 2
cores). Batches are random fixed-length crops whose choice is a pure function of a seed, so a
resumed run sees the same data.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmark.atomic import atomic_write
from benchmark.audio import find_audio_files, load_audio
from benchmark.errors import MelbenchError
from benchmark.home import melbench_home
from benchmark.logmel import LogMel, MelConfig

VAL_FRACTION = 0.1
LOGMEL_CACHE_FORMAT = 1


def resolve_corpus(corpus: str, quick: bool = False) -> tuple[str, list[Path]]:
    """Audio files of a corpus: an existing path (all audio under it) or a named melbench corpus.

    Args:
        corpus: a file or folder, or one of `music`, `speech`, `mix`.
        quick: use the quick build of a named corpus (`melbench data build --quick`).

    Returns:
        The corpus name used in checkpoint paths (the folder name for a path; `<name>-quick`
        for a quick named corpus) and its files.
    """
    path = Path(corpus).expanduser()
    if path.exists():
        return path.resolve().stem, find_audio_files(path)
    from benchmark.data.corpora import CORPORA, corpus_files  # lazy: built on the data side of the project

    if corpus not in CORPORA:
        raise MelbenchError(f"corpus {corpus!r}: neither an existing path nor one of {', '.join(CORPORA)}")
    return (f"{corpus}-quick" if quick else corpus), list(corpus_files(corpus, quick=quick))


def seed_for(*parts: object) -> int:
    """A 63-bit seed derived from any parts, e.g. `(train_seed, step, rank, "data")`."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class MelCorpus:
    """Log-Mel frames of a corpus split into training and held-out files."""

    train: list[torch.Tensor]  # each (n_frames, n_mels)
    val: list[torch.Tensor]
    mean: torch.Tensor  # (n_mels,) per-bin mean over all training frames
    std: torch.Tensor  # (n_mels,)
    train_s: float  # seconds of training audio
    frame_rate: float  # log-Mel frames per second (`MelConfig.frame_rate`)
    skipped: list[str] = field(default_factory=list)  # one line per unreadable file: path and problem


def _logmel_cache_dir(files: list[Path], config: MelConfig) -> Path:
    """Cache folder of these files' log-Mel frames: keyed by the front-end and each file's
    path, size and modification time (an edited or replaced file gives a new key)."""
    stats = []
    for path in files:
        st = path.stat() if path.exists() else None
        stats.append((str(path.resolve()), st.st_size, st.st_mtime_ns) if st else (str(path), -1, -1))
    key = {"format": LOGMEL_CACHE_FORMAT, "mel": asdict(config), "files": stats}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return melbench_home() / "logmel" / digest


def _compute_logmel(files: list[Path], config: MelConfig, progress: bool) -> tuple[list[torch.Tensor], list[str]]:
    frontend = LogMel(config)
    mels, skipped = [], []
    with torch.no_grad():
        for path in tqdm(files, desc="log-Mel", disable=not progress, leave=False):
            try:
                wave = load_audio(path, config.sr_hz)
            except MelbenchError as err:
                skipped.append(str(err))
                continue
            mels.append(frontend(torch.from_numpy(wave)))  # (T, n_mels)
    return mels, skipped


def corpus_logmel(files: list[Path], config: MelConfig, progress: bool = True) -> tuple[list[torch.Tensor], list[str]]:
    """Log-Mel frames of every readable file, from the disk cache when it holds them.

    The cache holds `frames.npy` (all files' frames, concatenated), `lengths.npy` (frames per
    file) and `skipped.json`; `done.json` is written last, so a kill leaves no half entry.

    Args:
        files: audio files (resampled to `config.sr_hz` on reading).
        config: the front-end.
        progress: show a progress bar while computing.

    Returns:
        `(n_frames, n_mels)` per readable file, in order, and one line per unreadable file.
    """
    folder = _logmel_cache_dir(files, config)
    if (folder / "done.json").is_file():
        try:
            frames = torch.from_numpy(np.load(folder / "frames.npy"))  # (sum T, n_mels)
            lengths = np.load(folder / "lengths.npy").tolist()
            skipped = json.loads((folder / "skipped.json").read_text())
            return list(torch.split(frames, lengths)), skipped
        except (OSError, ValueError) as err:  # a damaged entry is recomputed, not trusted
            print(f"  log-Mel cache {folder} unreadable ({err}); recomputing", flush=True)
    mels, skipped = _compute_logmel(files, config, progress)
    if mels:
        with atomic_write(folder / "frames.npy") as f:
            np.save(f, torch.cat(mels).numpy())
        with atomic_write(folder / "lengths.npy") as f:
            np.save(f, np.array([len(m) for m in mels], dtype=np.int64))
        with atomic_write(folder / "skipped.json", "w") as f:
            json.dump(skipped, f)
        with atomic_write(folder / "done.json", "w") as f:
            json.dump({"files": len(files), "mel": asdict(config)}, f)
    return mels, skipped


def load_mel_corpus(files: list[Path], n_mels: int, seed: int, progress: bool = True) -> MelCorpus:
    """Log-Mel frames of every file (cached on disk) split with a fixed seeded permutation.

    Args:
        files: audio files (resampled to 16 kHz on reading).
        n_mels: Mel bins.
        seed: split seed (the split never depends on the step).
        progress: show a progress bar.

    Returns:
        The corpus; `VAL_FRACTION` of the readable files (at least one) are held out, and a file
        that cannot be read is listed in `skipped` instead of stopping the run.
    """
    config = MelConfig(n_mels=n_mels)
    mels, skipped = corpus_logmel(files, config, progress)
    if len(mels) < 2:
        raise MelbenchError(
            f"pretraining needs at least 2 readable audio files (one held out), got {len(mels)} of {len(files)}"
        )
    order = np.random.default_rng(seed).permutation(len(mels))
    n_val = max(1, round(VAL_FRACTION * len(mels)))
    val = [mels[i] for i in sorted(order[:n_val])]
    train = [mels[i] for i in sorted(order[n_val:])]
    frames = torch.cat(train)  # (sum T, n_mels)
    std = frames.std(0).clamp(min=1e-3)  # a constant bin must not blow up the normalisation
    return MelCorpus(train, val, frames.mean(0), std, len(frames) / config.frame_rate, config.frame_rate, skipped)


def sample_batch(
    mels: list[torch.Tensor], batch_size: int, crop_frames: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops: files drawn in proportion to their length, offsets uniform.

    Args:
        mels: `(n_frames, n_mels)` per file.
        batch_size: crops per batch.
        crop_frames: frames per crop; shorter files give shorter, zero-padded crops.
        generator: the only source of randomness.

    Returns:
        `(batch_size, crop_frames, n_mels)` crops and `(batch_size,)` valid frame counts.
    """
    lengths = torch.tensor([len(m) for m in mels], dtype=torch.float)
    picks = torch.multinomial(lengths, batch_size, replacement=True, generator=generator)  # (B,)
    starts = torch.rand(batch_size, generator=generator)  # (B,) in [0, 1)
    batch = torch.zeros(batch_size, crop_frames, mels[0].shape[1])
    frames = torch.zeros(batch_size, dtype=torch.long)
    for i, (pick, start) in enumerate(zip(picks.tolist(), starts.tolist())):
        mel = mels[pick]
        offset = int(start * max(1, len(mel) - crop_frames + 1))
        crop = mel[offset : offset + crop_frames]
        batch[i, : len(crop)] = crop
        frames[i] = len(crop)
    return batch, frames
