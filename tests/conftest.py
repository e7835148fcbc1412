"""Shared fixtures: every test gets its own $MELBENCH_HOME, and audio it writes itself."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(autouse=True)
def melbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $MELBENCH_HOME at a fresh folder so tests never share caches."""
    home = tmp_path / "melbench_home"
    monkeypatch.setenv("MELBENCH_HOME", str(home))
    return home


def sine(freq_hz: float, duration_s: float, sr_hz: int, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine tone."""
    t = np.arange(int(round(duration_s * sr_hz))) / sr_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    """A 1.5 s, 16 kHz mono 16-bit WAV of a 440 Hz tone."""
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 1.5, 16000), 16000, subtype="PCM_16")
    return path
