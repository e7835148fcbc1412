"""Public-dataset loaders, each on a tiny fake copy written in the dataset's real layout."""

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmark.data.load import load_dataset


def _audio(path: Path, dur_s: float = 0.3, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.1 * np.sin(2 * np.pi * 220 * np.arange(int(16000 * dur_s)) / 16000)
    sf.write(str(path), wave, 16000, format=fmt) if fmt else sf.write(str(path), wave, 16000)


def test_gtzan_stratified_split_and_filtered_lists(tmp_path):
    for genre in ("blues", "rock", "jazz"):
        for i in range(10):
            _audio(tmp_path / "genres" / genre / f"{genre}.{i:05d}.wav")
    ds = load_dataset(f"gtzan:{tmp_path}")
    assert len(ds.items) == 30 and {i.labels[0] for i in ds.split("test")} == {"blues", "rock", "jazz"}
    (tmp_path / "train_filtered.txt").write_text("blues/blues.00000.wav\nrock/rock.00001.wav\n")
    (tmp_path / "valid_filtered.txt").write_text("jazz/jazz.00002.wav\n")
    (tmp_path / "test_filtered.txt").write_text("rock/rock.00003.wav\n")
    ds = load_dataset(f"gtzan:{tmp_path}")
    assert [(i.id, i.split) for i in ds.items] == [
        ("blues.00000", "train"), ("jazz.00002", "valid"), ("rock.00001", "train"), ("rock.00003", "test")]


def test_magnatagatune_top_tags_and_folder_split(tmp_path):
    tags = ["guitar", "classical", "slow", "rare"]
    rows = ["\t".join(["clip_id", *tags, "mp3_path"])]
    for n, (folder, on) in enumerate([("0", "guitar;slow"), ("b", "classical"), ("c", "guitar"), ("f", "slow;rare")]):
        name = f"{folder}/artist-album-0{n}-track-0-29.mp3"
        rows.append("\t".join([str(n), *("1" if t in on.split(";") else "0" for t in tags), name]))
        _audio(tmp_path / "mp3" / name.replace(".mp3", ".wav"))
        (tmp_path / "mp3" / name.replace(".mp3", ".wav")).rename(tmp_path / "mp3" / name)
    (tmp_path / "annotations_final.csv").write_text("\n".join(rows) + "\n")
    from benchmark.data.public import load_magnatagatune

    ds = load_magnatagatune(tmp_path, n_tags=3)
    assert ds.classes == ("classical", "guitar", "slow") and ds.labels == "multilabel"
    assert [i.split for i in ds.items] == ["train", "train", "valid", "test"]
    assert ds.items[3].labels == ("slow",) and ds.items[0].group == "artist-album-00-track"


def test_nsynth_family_and_pitch(tmp_path):
    for split, family, pitch in (("train", "guitar", 60), ("valid", "mallet", 62), ("test", "brass", 64)):
        note = f"{family}_acoustic_000-0{pitch}-100"
        folder = tmp_path / f"nsynth-{split}"
        _audio(folder / "audio" / f"{note}.wav")
        meta = {note: {"instrument_family_str": family, "pitch": pitch, "velocity": 100,
                       "instrument_str": f"{family}_acoustic_000"}}
        (folder / "examples.json").write_text(json.dumps(meta))
    fam = load_dataset(f"nsynth:{tmp_path}")
    assert [i.labels[0] for i in fam.items] == ["guitar", "mallet", "brass"] and all(i.path.exists() for i in fam.items)
    assert load_dataset(f"nsynth-pitch:{tmp_path}").classes == ("60", "62", "64")


def test_librispeech_with_cpc_alignments(tmp_path):
    utts = ["19-198-0001", "19-198-0002", "26-495-0003"]
    for u in utts:
        spk, chap, _ = u.split("-")
        _audio(tmp_path / "LibriSpeech" / "train-clean-100" / spk / chap / f"{u}.flac", 0.05, "FLAC")
    (tmp_path / "converted_aligned_phones.txt").write_text("\n".join(f"{u} 0 0 3 3 3" for u in utts) + "\n")
    (tmp_path / "train_split.txt").write_text("19-198-0001\n19-198-0002\n")
    (tmp_path / "test_split.txt").write_text("26-495-0003\n")
    ds = load_dataset(f"librispeech:{tmp_path}")
    assert ds.level == "frame" and len(ds.classes) == 41
    assert ds.items[0].segments == ((0.0, 0.02, "0"), (0.02, 0.05, "3"))
    assert [i.split for i in ds.items if i.id == "26-495-0003"] == ["test"]


def test_timit_core_test_speakers_folding_and_no_sa(tmp_path):
    layout = [("TRAIN", "DR1", "FCJF0", "SI1027"), ("TRAIN", "DR1", "FCJF0", "SA1"),
              ("TEST", "DR1", "FELC0", "SX126"), ("TEST", "DR1", "FAKS0", "SI943")]
    for part, region, speaker, sentence in layout:
        folder = tmp_path / part / region / speaker
        _audio(folder / f"{sentence}.WAV", 0.2, "NIST")  # TIMIT audio is NIST SPHERE
        (folder / f"{sentence}.PHN").write_text("0 800 h#\n800 1600 ix\n1600 2000 q\n2000 3200 zh\n")
    ds = load_dataset(f"timit:{tmp_path}")
    assert {(i.id, i.split) for i in ds.items} == {
        ("FCJF0-SI1027", "train"), ("FELC0-SX126", "test"), ("FAKS0-SI943", "valid")}
    assert ds.items[0].segments == ((0.0, 0.05, "sil"), (0.05, 0.1, "ih"), (0.125, 0.2, "sh"))
    assert len(ds.classes) == 39
