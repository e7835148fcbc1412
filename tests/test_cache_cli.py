"""Feature cache, extraction driver, and the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.cache import FeatureCache, cache_key
from benchmark.cli import main
from benchmark.extract import extract_files
from tests.conftest import sine


def test_second_extraction_hits_the_cache(tmp_path: Path, wav_file: Path, melbench_home: Path) -> None:
    first = extract_files("mel", {}, [wav_file], progress=False)
    assert [i.cached for i in first.items] == [False]
    second = extract_files("mel", {}, [wav_file], progress=False)
    assert [i.cached for i in second.items] == [True]
    assert second.extracted_audio_s == 0
    assert first.items[0].feature_path == second.items[0].feature_path
    assert melbench_home in first.items[0].feature_path.parents
    feats = np.load(first.items[0].feature_path)
    assert feats.shape == (151, 80) and feats.dtype == np.float32
    # A renamed copy hits (content-addressed); other options miss.
    copy = tmp_path / "copy.wav"
    copy.write_bytes(wav_file.read_bytes())
    assert extract_files("mel", {}, [copy], progress=False).items[0].cached
    assert not extract_files("mel", {"n_mels": 40}, [wav_file], progress=False).items[0].cached


def test_cache_key_is_recorded_and_corrupt_entries_are_rewritten(wav_file: Path, melbench_home: Path) -> None:
    report = extract_files("mel", {}, [wav_file], progress=False)
    entry = report.items[0].feature_path
    key = json.loads((entry.parent.parent / "key.json").read_text())
    assert key["upstream"] == "mel" and key["options"] == {} and key["layers"] is False
    entry.write_bytes(entry.read_bytes()[:50])  # a torn write from some other tool
    again = extract_files("mel", {}, [wav_file], progress=False)
    assert not again.items[0].cached
    assert np.load(entry).shape == (151, 80)


def test_checkpoint_hash_is_part_of_the_key(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"weights-1")
    a = FeatureCache(cache_key("mel", {"checkpoint": ckpt}, False))
    ckpt.write_bytes(b"weights-2")
    b = FeatureCache(cache_key("mel", {"checkpoint": ckpt}, False))
    assert a.key["checkpoint_sha256"] != b.key["checkpoint_sha256"] and a.dir != b.dir
    assert "checkpoint" not in a.key["options"]


def test_one_bad_file_does_not_lose_the_rest(tmp_path: Path, wav_file: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage")
    report = extract_files("mel", {}, [bad, wav_file], progress=False)
    assert [i.path for i in report.items] == [wav_file]
    assert report.skipped[0][0] == str(bad) and "cannot read audio" in report.skipped[0][1]


def test_cli_extract_list_check(tmp_path: Path, wav_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", "mel", str(wav_file), "--quiet", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "(151, 80)" in out and "x realtime" in out
    assert np.load(tmp_path / "out" / "tone.npy").shape == (151, 80)
    assert main(["list"]) == 0
    assert "mel" in capsys.readouterr().out
    assert main(["check", "mel"]) == 0
    assert "8 of 8 checks passed" in capsys.readouterr().out  # the module name `load`, then 7 of the object


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", "nope", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("melbench: error: unknown upstream 'nope'; known: ") and "mel" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["extract", "mel", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: no such file or folder" in capsys.readouterr().err


def test_console_script_and_module_entry(wav_file: Path) -> None:
    bin_dir = Path(sys.executable).parent
    for cmd in ([str(bin_dir / "melbench")], [sys.executable, "-m", "benchmark"]):
        proc = subprocess.run([*cmd, "extract", "mel", str(wav_file), "--quiet"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "(151, 80)" in proc.stdout


@pytest.mark.parametrize("upstream,options", [("mel", {}), ("mockingjay", {"random_init": True, "preset": "tiny"})])
def test_batched_extraction_equals_one_by_one(tmp_path: Path, upstream: str, options: dict) -> None:
    files = []
    for i, duration_s in enumerate((0.3, 2.0, 1.1, 0.05, 3.2)):
        files.append(tmp_path / f"clip{i}.wav")
        sf.write(files[-1], sine(200 + 50 * i, duration_s, 16000), 16000, subtype="FLOAT")
    single = extract_files(upstream, options, files, layers=True, progress=False, batch_size=1, cache_root=tmp_path / "a")
    batched = extract_files(upstream, options, files, layers=True, progress=False, batch_size=4, cache_root=tmp_path / "b")
    assert [i.path for i in single.items] == [i.path for i in batched.items] == files
    for a, b in zip(single.items, batched.items):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.load(a.feature_path), np.load(b.feature_path), atol=1e-4)
