"""The embedded build: splits, leaks, idempotence, resumability with identical bytes."""

import hashlib
import json
from pathlib import Path

import mir_eval
import pytest

from benchmark.data.build import DATASETS, build
from benchmark.data.corpora import CORPORA, corpus_files, corpus_records
from benchmark.data.leaks import check_pretraining_disjoint, check_split_groups
from benchmark.data.manifest import load_dataset_dir
from benchmark.errors import MelbenchError


def _root(home: Path) -> Path:
    return home / "data" / "quick"


def _datasets(home: Path) -> dict:
    return {name: load_dataset_dir(_root(home) / name) for name in DATASETS}


def test_every_dataset_loads_with_files_and_three_splits(quick_home):
    for name, ds in _datasets(quick_home).items():
        assert {i.split for i in ds.items} == {"train", "valid", "test"}, name
        assert all(i.path.exists() for i in ds.items), name
        labels = {lab for i in ds.items for lab in i.labels} | {s[2] for i in ds.items for s in i.segments}
        assert labels <= set(ds.classes), name


def test_no_group_on_two_sides_and_music_splits_agree_across_datasets(quick_home):
    ds = _datasets(quick_home)
    for d in ds.values():
        check_split_groups(d)
    side = {}
    for name in ("tagging", "key", "genre"):
        for item in ds[name].items:
            assert side.setdefault(item.group, item.split) == item.split, (name, item.group)


def test_phones_test_has_unseen_sentences_and_an_unseen_voice(quick_home):
    phones = _datasets(quick_home)["phones"]
    assert len(phones.classes) == 40 and "sil" in phones.classes
    train_voices = {i.extra["voice"] for i in phones.split("train")}
    test_voices = {i.extra["voice"] for i in phones.split("test")}
    assert test_voices - train_voices  # at least one voice never heard in training
    train_text = {i.extra["text"] for i in phones.split("train") + phones.split("valid")}
    assert not train_text & {i.extra["text"] for i in phones.split("test")}
    item = phones.split("train")[0]
    assert item.segments[0][0] == 0.0 and item.segments[-1][1] == pytest.approx(item.duration_s)


def test_instrument_test_soundfont_unseen_and_fluid_musescore_on_one_side(quick_home):
    inst = _datasets(quick_home)["instrument"]
    fonts = {s: {i.extra["soundfont"] for i in inst.split(s)} for s in ("train", "valid", "test")}
    assert fonts["test"] == {"timgm6mb"}
    assert fonts["train"] | fonts["valid"] == {"fluidr3", "musescore"}
    programs = {s: {i.extra["program"] for i in inst.split(s)} for s in ("train", "valid")}
    assert not programs["train"] & programs["valid"]
    assert len({i.labels[0] for i in inst.split("test")}) == 11


def test_key_labels_are_valid_mir_eval_keys(quick_home):
    for item in _datasets(quick_home)["key"].items:
        mir_eval.key.validate_key(item.labels[0])


def test_pretraining_corpora_never_hold_a_test_item(quick_home, monkeypatch):
    monkeypatch.setenv("MELBENCH_HOME", str(quick_home))
    manifests = [_root(quick_home) / "corpora" / c / "manifest.jsonl" for c in CORPORA]
    datasets = list(_datasets(quick_home).values())
    check_pretraining_disjoint(datasets, manifests)
    tested = {i.extra["source_item"] for d in datasets for i in d.split("test")}
    for name in CORPORA:
        files = corpus_files(name, quick=True)
        assert files and all(f.exists() for f in files)
        assert not tested & {r["source_item"] for r in corpus_records(name, quick=True)}
    assert len(corpus_files("mix", quick=True)) == len(corpus_files("music", True)) + len(corpus_files("speech", True))


def test_leak_check_catches_a_test_piece_in_a_corpus(quick_home, tmp_path):
    genre = _datasets(quick_home)["genre"]
    leaked = genre.split("test")[0]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": "x", "path": "x.flac", "source_item": leaked.extra["source_item"]}) + "\n")
    with pytest.raises(MelbenchError, match="pretraining item .* is in the test split of 'genre'"):
        check_pretraining_disjoint([genre], [manifest])


def test_missing_corpus_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("MELBENCH_HOME", str(tmp_path))
    with pytest.raises(MelbenchError, match=r"corpus 'music' is not built; run `melbench data build`"):
        corpus_files("music")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rebuild_is_free_and_a_resumed_build_gives_identical_files(quick_home):
    root = _root(quick_home)
    report = build(quick=True, home=quick_home, log=lambda line: None)
    assert all("skipped" in counts for counts in report.steps.values())  # second run: no work
    # Simulate a crash: lose some outputs and their done-markers, then build again.
    inst = load_dataset_dir(root / "instrument")
    genre = load_dataset_dir(root / "genre")
    phones = load_dataset_dir(root / "phones")
    victims = [inst.items[5].path, inst.items[-1].path, genre.items[0].path, phones.items[3].path]
    before = {p: _digest(p) for p in victims}
    manifests = {n: (root / n / "manifest.jsonl").read_text() for n in DATASETS}
    for p in victims:
        p.unlink()
    (root / "audio" / "crops" / f"{genre.items[0].id.rsplit('-', 1)[0]}.json").unlink()
    phones.items[3].path.with_suffix(".json").unlink()
    for step in ("notes", "music", "speech"):
        (root / ".steps" / step / ".done").unlink()
    build(quick=True, home=quick_home, log=lambda line: None)
    assert {p: _digest(p) for p in victims} == before
    assert {n: (root / n / "manifest.jsonl").read_text() for n in DATASETS} == manifests


def test_data_info_cli_prints_splits_hours_and_labels(quick_home, monkeypatch, capsys):
    from benchmark.cli import main

    monkeypatch.setenv("MELBENCH_HOME", str(quick_home))
    assert main(["data", "info", "genre", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "genre: clip-level multiclass, 8 classes" in out
    assert " test " in out and "train label items: aird 2," in out
    assert main(["data", "info", "genre"]) == 2  # the full build is not there
    assert "run `melbench data build`" in capsys.readouterr().err
