"""Audio front-end: read any file soundfile can, mix to mono, resample, float32."""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from benchmark.errors import MelbenchError

# Extensions `find_audio_files` picks up from a folder; libsndfile decodes all of them.
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au"})


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a `(n_samples, n_channels)` array.

    Args:
        data: `(n_samples,)` or `(n_samples, n_channels)` samples.

    Returns:
        `(n_samples,)` float32.
    """
    if data.ndim == 2:
        data = data.mean(axis=1)
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(wave: np.ndarray, orig_sr_hz: int, target_sr_hz: int) -> np.ndarray:
    """Band-limited (windowed sinc) resampling with torchaudio.

    Args:
        wave: `(n_samples,)` float32 mono samples.
        orig_sr_hz: the rate `wave` was recorded at.
        target_sr_hz: the rate wanted.

    Returns:
        `(round(n_samples * target / orig),)` float32 samples.
    """
    if orig_sr_hz == target_sr_hz:
        return wave
    import torchaudio.functional as AF  # lazy: torchaudio costs ~1 s to import

    out = AF.resample(torch.from_numpy(wave), orig_sr_hz, target_sr_hz)
    return out.numpy().astype(np.float32, copy=False)


def load_audio(path: str | Path, sr_hz: int) -> np.ndarray:
    """Read an audio file as mono float32 at `sr_hz`.

    Args:
        path: any file libsndfile reads (wav, flac, ogg/vorbis, opus, mp3, aiff, ...).
        sr_hz: the sample rate to return, e.g. the upstream's declared `sample_rate`.

    Returns:
        `(n_samples,)` float32 samples in [-1, 1] for integer formats.

    Raises:
        MelbenchError: the file is missing, unreadable, empty, or holds NaN/Inf samples.
    """
    path = Path(path)
    if not path.exists():
        raise MelbenchError(f"{path}: no such file")
    if path.is_dir():
        raise MelbenchError(f"{path}: is a folder, expected an audio file")
    try:
        data, file_sr_hz = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise MelbenchError(f"{path}: cannot read audio ({err})") from None
    except PermissionError:
        raise MelbenchError(f"{path}: permission denied") from None
    if data.shape[0] == 0:
        raise MelbenchError(f"{path}: contains no samples")
    if not np.isfinite(data).all():
        raise MelbenchError(f"{path}: contains NaN or Inf samples")
    return resample(to_mono(data), int(file_sr_hz), sr_hz)


def find_audio_files(path: str | Path) -> list[Path]:
    """List the audio files at `path`: the file itself, or a folder searched recursively.

    Args:
        path: a file or a folder.

    Returns:
        Sorted paths (a folder's files with an extension in `AUDIO_EXTENSIONS`).

    Raises:
        MelbenchError: the path does not exist, or a folder holds no audio file.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.exists():
        raise MelbenchError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        known = ", ".join(sorted(AUDIO_EXTENSIONS))
        raise MelbenchError(f"{path}: no audio files found (looked for {known})")
    return files
