"""Shared fixtures: one quick embedded build per test session (about 40 s on 2 cores)."""

import shutil
from pathlib import Path

import pytest

NEEDS = {
    "festival": lambda: shutil.which("festival") is not None,
    "fluid-soundfont-gm": lambda: Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists(),
    "timgm6mb-soundfont": lambda: Path("/usr/share/sounds/sf2/TimGM6mb.sf2").exists(),
    "musescore-general-soundfont-small": lambda: Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3").exists(),
    "fortunes": lambda: Path("/usr/share/games/fortunes/fortunes").exists(),
}


def missing_requirements() -> list[str]:
    """Debian/Python packages the embedded build needs that are absent here."""
    import importlib.util

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
