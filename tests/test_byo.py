"""Bring-your-own manifests: clip, multi-label, frame level (CSV, TextGrid, .lab), bad rows."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmark.data.byo import load_manifest
from benchmark.data.load import load_dataset
from benchmark.errors import MelbenchError


def _wav(path: Path, dur_s: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * dur_s)) / 16000
    sf.write(str(path), 0.1 * np.sin(2 * np.pi * 440 * t), 16000)


def test_clip_manifest_keeps_good_rows_and_names_each_bad_line(tmp_path, capsys):
    for i in range(12):
        _wav(tmp_path / "audio" / f"c{i}.wav")
    (tmp_path / "audio" / "broken.wav").write_text("not audio")
    rows = ["path,label,group"]
    rows += [f"audio/c{i}.wav,{'dog' if i % 2 else 'cat'},rec{i // 2}" for i in range(12)]
    rows += ["audio/missing.wav,dog,", "audio/broken.wav,cat,", "audio/c1.wav,,"]
    manifest = tmp_path / "my.csv"
    manifest.write_text("\n".join(rows) + "\n")
    dataset = load_dataset(str(manifest), seed=3)
    err = capsys.readouterr().err
    assert f"{manifest}:14: audio file audio/missing.wav not found" in err
    assert f"{manifest}:15: cannot read audio audio/broken.wav" in err
    assert f"{manifest}:16: empty label" in err
    assert "dropped 3 bad row(s), kept 12 item(s)" in err
    assert dataset.level == "clip" and dataset.labels == "multiclass" and dataset.classes == ("cat", "dog")
    assert all(i.path.is_absolute() and i.path.exists() for i in dataset.items)
    sides = {}
    for item in dataset.items:
        assert sides.setdefault(item.group, item.split) == item.split  # a recording never splits
    assert {i.split for i in dataset.items} >= {"train", "test"}


def test_multilabel_rows_and_given_splits(tmp_path):
    for i in range(3):
        _wav(tmp_path / f"{i}.wav")
    manifest = tmp_path / "tags.csv"
    manifest.write_text("path,label,split\n0.wav,rock;guitar,train\n1.wav,jazz,valid\n2.wav,rock,test\n")
    dataset, problems = load_manifest(manifest)
    assert problems == [] and dataset.labels == "multilabel"
    assert dataset.items[0].labels == ("rock", "guitar") and [i.split for i in dataset.items] == ["train", "valid", "test"]


def test_bad_split_value_is_reported(tmp_path):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\na.wav,x,training\nb.wav,x,train\n")
    dataset, problems = load_manifest(manifest)
    assert problems == [f"{manifest}:2: split must be one of train, valid, test, got 'training'"]
    assert len(dataset.items) == 1


def test_missing_label_column_is_one_line_error(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,genre\na.wav,x\n")
    with pytest.raises(MelbenchError, match=r"m.csv:1: no label column"):
        load_manifest(manifest)


def test_frame_manifest_from_segment_rows(tmp_path):
    _wav(tmp_path / "s.wav", 1.0)
    manifest = tmp_path / "f.csv"
    manifest.write_text("path,start_s,end_s,label\ns.wav,0,0.3,sil\ns.wav,0.3,0.7,AH\ns.wav,0.9,0.8,T\n")
    dataset, problems = load_manifest(manifest)
    assert len(problems) == 1 and problems[0].startswith(f"{manifest}:4: bad segment")
    assert dataset.level == "frame" and dataset.items[0].segments == ((0.0, 0.3, "sil"), (0.3, 0.7, "AH"))


def test_textgrid_and_lab_annotations(tmp_path):
    _wav(tmp_path / "a.wav", 1.0)
    _wav(tmp_path / "b.wav", 1.0)
    (tmp_path / "a.TextGrid").write_text(
        'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 1\ntiers? <exists>\nsize = 2\n'
        'item []:\n    item [1]:\n        class = "IntervalTier"\n        name = "words"\n        xmin = 0\n'
        '        xmax = 1\n        intervals: size = 1\n        intervals [1]:\n            xmin = 0\n'
        '            xmax = 1\n            text = "hello"\n    item [2]:\n        class = "IntervalTier"\n'
        '        name = "phones"\n        xmin = 0\n        xmax = 1\n        intervals: size = 2\n'
        '        intervals [1]:\n            xmin = 0\n            xmax = 0.4\n            text = ""\n'
        '        intervals [2]:\n            xmin = 0.4\n            xmax = 1\n            text = "HH"\n'
    )
    (tmp_path / "b.lab").write_text("0 4000000 sil\n4000000 10000000 AA\n")  # HTK units (100 ns)
    manifest = tmp_path / "ann.csv"
    manifest.write_text("path,annotation\na.wav,a.TextGrid\nb.wav,b.lab\n")
    dataset, problems = load_manifest(manifest)
    assert problems == []
    assert dataset.items[0].segments == ((0.0, 0.4, "sil"), (0.4, 1.0, "HH"))
    assert dataset.items[1].segments == ((0.0, 0.4, "sil"), (0.4, 1.0, "AA"))


def test_unknown_name_lists_what_is_accepted():
    with pytest.raises(MelbenchError, match="not an embedded dataset"):
        load_dataset("no-such-thing")
