"""Game-music decoding: .pk3 archives, Vorbis decode to 16 kHz FLAC, a missing package skipped."""

import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf

from benchmark.data import gamemusic
from benchmark.data.common import BuildContext


def test_tracks_inside_pk3_are_found_and_decoded_to_16k(tmp_path):
    unpacked = tmp_path / "pkg"
    (unpacked / "usr/share/game").mkdir(parents=True)
    ogg = tmp_path / "theme.ogg"
    wave = 0.2 * np.sin(2 * np.pi * 330 * np.arange(44100) / 44100)
    sf.write(str(ogg), np.stack([wave, wave], axis=1), 44100, format="OGG", subtype="VORBIS")
    with zipfile.ZipFile(unpacked / "usr/share/game/music.pk3", "w") as z:
        z.write(ogg, "music/theme.ogg")
        z.writestr("maps/readme.txt", "not audio")
    found = gamemusic.tracks(unpacked)
    assert [p.name for p in found] == ["theme.ogg"]
    out = tmp_path / "theme.flac"
    assert gamemusic._decode(found[0], out) is None
    info = sf.info(str(out))
    assert info.samplerate == 16000 and info.channels == 1 and info.duration == pytest.approx(1.0, abs=0.01)


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian)")
def test_a_package_that_cannot_be_fetched_is_skipped_with_a_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gamemusic, "PACKAGES", ("melbench-no-such-package",))
    counts = gamemusic.build_games(BuildContext(tmp_path, quick=True))
    assert counts == {"tracks": 0, "packages": 0}
    assert "skipping game music melbench-no-such-package: `apt-get download melbench-no-such-package` failed" in (
        capsys.readouterr().err)
    assert (tmp_path / "parts" / "games.jsonl").read_text() == ""
