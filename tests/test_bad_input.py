"""Bad and unusual audio through `extract`: one-line errors naming the file, the rest goes on."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.extract import extract_files
from tests.conftest import sine

GOOD_SR_HZ = (8000, 22050, 44100, 48000, 96000)
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def write_bad(folder: Path) -> dict[Path, str]:
    """Files that must be skipped, with the message each must produce."""
    folder.mkdir()
    bad = {}
    (folder / "empty file.wav").write_bytes(b"")
    bad[folder / "empty file.wav"] = "cannot read audio"
    sf.write(folder / "zero_length.wav", np.zeros(0, np.float32), 16000)
    bad[folder / "zero_length.wav"] = "contains no samples"
    (folder / "not_audio.mp3").write_text("<html>this is a web page</html>")
    bad[folder / "not_audio.mp3"] = "cannot read audio"
    (folder / "song.xyz").write_bytes(os.urandom(2048))
    bad[folder / "song.xyz"] = "cannot read audio"
    sf.write(folder / "header_only.wav", sine(440, 1.0, 16000), 16000)
    (folder / "header_only.wav").write_bytes((folder / "header_only.wav").read_bytes()[:30])
    bad[folder / "header_only.wav"] = "cannot read audio"
    nan = sine(440, 1.0, 16000)
    nan[100] = np.nan
    sf.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    bad[folder / "nan.wav"] = "contains NaN or Inf samples"
    inf = sine(440, 1.0, 16000)
    inf[5] = np.inf
    sf.write(folder / "inf.flac.wav", inf, 16000, subtype="FLOAT")
    bad[folder / "inf.flac.wav"] = "contains NaN or Inf samples"
    bad[folder / "missing.wav"] = "no such file"
    return bad


def write_good(folder: Path) -> dict[Path, float]:
    """Unusual but valid files, with their durations in seconds."""
    folder.mkdir()
    good = {}
    for sr_hz in GOOD_SR_HZ:
        good[folder / f"rate_{sr_hz}.wav"] = 0.5
        sf.write(folder / f"rate_{sr_hz}.wav", sine(440, 0.5, sr_hz), sr_hz)
    for subtype in SUBTYPES:
        good[folder / f"depth_{subtype}.wav"] = 0.5
        sf.write(folder / f"depth_{subtype}.wav", sine(440, 0.5, 16000), 16000, subtype=subtype)
    sf.write(folder / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(folder / "clipped.wav", 3 * sine(440, 1.0, 16000), 16000, subtype="FLOAT")
    sf.write(folder / "one_sample.wav", np.array([0.5], np.float32), 16000)
    sf.write(folder / "stereo.wav", np.stack([sine(440, 1.0, 16000)] * 2, 1), 16000)
    sf.write(folder / "six_channels.wav", np.stack([sine(440, 1.0, 16000)] * 6, 1), 16000)
    (folder / "dir with spaces é ü 日本").mkdir()
    sf.write(folder / "dir with spaces é ü 日本" / "naïve file.flac", sine(300, 1.0, 16000), 16000)
    good.update({folder / "silent.wav": 1.0, folder / "clipped.wav": 1.0, folder / "one_sample.wav": 1 / 16000,
                 folder / "stereo.wav": 1.0, folder / "six_channels.wav": 1.0,
                 folder / "dir with spaces é ü 日本" / "naïve file.flac": 1.0})
    return good


def test_bad_files_are_skipped_with_a_clear_message_and_good_ones_survive(tmp_path: Path) -> None:
    bad = write_bad(tmp_path / "bad")
    good = write_good(tmp_path / "good")
    files = sorted([*bad, *good])
    report = extract_files("mel", {}, files, progress=False)
    skipped = dict(report.skipped)
    assert set(skipped) == {str(p) for p in bad}
    for path, message in bad.items():
        assert skipped[str(path)].startswith(f"{path}: {message}"), skipped[str(path)]
        assert "\n" not in skipped[str(path)]
    by_path = {i.path: i for i in report.items}
    assert set(by_path) == set(good)
    for path, duration_s in good.items():
        frames = by_path[path].shape[0]
        assert abs(frames - duration_s * 100) <= 1, (path, frames)
        assert np.isfinite(np.load(by_path[path].feature_path)).all()
    # The good files' features do not depend on the bad files being in the run.
    alone = extract_files("mel", {}, sorted(good), progress=False)
    assert all(i.cached for i in alone.items)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, sine(440, 0.5, 16000), 16000)
    path.chmod(0)
    report = extract_files("mel", {}, [path], progress=False)
    assert report.skipped[0][1].startswith(f"{path}: cannot read")
