"""Audio front-end: formats, channel mixing, resampling, errors; log-Mel framing."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.audio import find_audio_files, load_audio
from benchmark.errors import MelbenchError
from benchmark.logmel import LogMel, MelConfig
from tests.conftest import sine


def peak_hz(wave: np.ndarray, sr_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr_hz)[spectrum.argmax()])


@pytest.mark.parametrize("sr_hz", [8000, 22050, 44100, 48000, 96000])
def test_resampling_keeps_duration_and_pitch(tmp_path: Path, sr_hz: int) -> None:
    path = tmp_path / f"tone_{sr_hz}.wav"
    sf.write(path, sine(1000, 2.0, sr_hz), sr_hz, subtype="FLOAT")
    wave = load_audio(path, 16000)
    assert wave.dtype == np.float32
    assert abs(len(wave) - 32000) <= 1
    assert abs(peak_hz(wave, 16000) - 1000) < 2


def test_stereo_and_six_channels_mix_to_mono(tmp_path: Path) -> None:
    left, right = sine(300, 1.0, 16000), sine(300, 1.0, 16000, amplitude=0.1)
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    assert np.allclose(load_audio(tmp_path / "st.wav", 16000), (left + right) / 2, atol=1e-6)
    six = np.stack([sine(300, 1.0, 16000, amplitude=a) for a in (0.1, 0.2, 0.3, 0.0, 0.0, 0.0)], 1)
    sf.write(tmp_path / "six.wav", six, 16000, subtype="FLOAT")
    assert np.allclose(load_audio(tmp_path / "six.wav", 16000), six.mean(1), atol=1e-6)


@pytest.mark.parametrize(
    "name,fmt,subtype",
    [
        ("a.wav", "WAV", "PCM_16"),
        ("a24.wav", "WAV", "PCM_24"),
        ("a32.wav", "WAV", "PCM_32"),
        ("u8.wav", "WAV", "PCM_U8"),
        ("a.flac", "FLAC", "PCM_16"),
        ("a.ogg", "OGG", "VORBIS"),
        ("a.opus", "OGG", "OPUS"),
        ("a.mp3", "MP3", "MPEG_LAYER_III"),
    ],
)
def test_formats(tmp_path: Path, name: str, fmt: str, subtype: str) -> None:
    sr_hz = 48000 if subtype == "OPUS" else 16000  # Opus encodes only at 8/12/16/24/48 kHz
    path = tmp_path / name
    sf.write(path, sine(440, 1.0, sr_hz), sr_hz, format=fmt, subtype=subtype)
    wave = load_audio(path, 16000)
    # Lossy codecs add encoder delay/padding: allow a few ms, and check the pitch survives.
    assert abs(len(wave) - 16000) < 0.08 * 16000
    assert abs(peak_hz(wave, 16000) - 440) < 5


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MelbenchError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav", 16000)
    fake = tmp_path / "fake.wav"
    fake.write_text("this is not audio")
    with pytest.raises(MelbenchError, match="fake.wav: cannot read audio"):
        load_audio(fake, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(MelbenchError, match="empty.wav: contains no samples"):
        load_audio(empty, 16000)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(MelbenchError, match="nan.wav: contains NaN or Inf"):
        load_audio(nan, 16000)


def test_find_audio_files(tmp_path: Path, wav_file: Path) -> None:
    (tmp_path / "sub dir é").mkdir()
    sf.write(tmp_path / "sub dir é" / "b.flac", sine(200, 0.2, 16000), 16000)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_audio_files(tmp_path)] == ["b.flac", "tone.wav"]
    assert find_audio_files(wav_file) == [wav_file]
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(MelbenchError, match="empty_dir: no audio files found"):
        find_audio_files(tmp_path / "empty_dir")


def test_logmel_framing_and_pitch() -> None:
    frontend = LogMel(MelConfig())
    for n in (1, 159, 160, 16000, 16001):
        feats = frontend(torch.zeros(n))
        assert feats.shape == (1 + n // 160, 80)
        assert torch.isfinite(feats).all()  # silence maps to log(1e-6), not -inf
    low = frontend(torch.from_numpy(sine(200, 1.0, 16000))).mean(0).argmax()
    high = frontend(torch.from_numpy(sine(3000, 1.0, 16000))).mean(0).argmax()
    assert high > low + 20
