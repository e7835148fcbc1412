"""Shared fixtures: a fresh $MELBENCH_HOME per test, audio the tests write themselves, and one
quick embedded build per test session (about 40 s on 2 cores)."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

NEEDS = {
    "festival": lambda: shutil.which("festival") is not None,
    "fluid-soundfont-gm": lambda: Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(),
    "timgm6mb-soundfont": lambda: Path("/usr/share/sounds/sf2/TimGM6mb.sf2").exists(),
    "musescore-general-soundfont-small": lambda: Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3").exists(),
    "fortunes": lambda: Path("/usr/share/games/fortunes/fortunes").exists(),
}


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


def missing_requirements() -> list[str]:
    """Debian/Python packages the embedded build needs that are absent here."""
    missing = [name for name, present in NEEDS.items() if not present()]
    missing += [m for m in ("music21", "fluidsynth") if importlib.util.find_spec(m) is None]
    return missing


@pytest.fixture(scope="session")
def quick_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `$MELBENCH_HOME` holding a finished `melbench data build --quick`."""
    missing = missing_requirements()
    if missing:
        pytest.skip(f"embedded build needs {', '.join(missing)} (scripts/setup.sh installs them)")
    from benchmark.data.build import build

    home = tmp_path_factory.mktemp("home")
    build(quick=True, home=home, log=lambda line: None)
    return home
