"""Small units of the builders: phone folding, Festival label files, splits, seeds, renderer."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.data.speech import PHONE_CLASSES, fold_phone, read_segs
from benchmark.data.splits import grouped_stratified_split
from benchmark.errors import MelbenchError


def test_phone_folding_covers_cmudict_and_rejects_unknown():
    assert len(PHONE_CLASSES) == 40
    assert fold_phone("ax") == "AH" and fold_phone("pau") == "sil" and fold_phone("zh") == "ZH"
    with pytest.raises(MelbenchError, match="unknown Festival phone"):
        fold_phone("qq")


def test_read_segs_makes_contiguous_segments_clipped_to_audio(tmp_path):
    segs = tmp_path / "a.segs"
    segs.write_text("separator ;\nnfields 1\n#\n0.2200 100 pau\n0.2871 100 hh\n0.5 100 ax\n0.9 100 pau\n")
    assert read_segs(segs, 0.8) == [[0.0, 0.22, "sil"], [0.22, 0.2871, "HH"], [0.2871, 0.5, "AH"], [0.5, 0.8, "sil"]]


def test_grouped_stratified_split_keeps_groups_whole_and_trains_every_class():
    groups = [f"rec{i // 3}" for i in range(90)]  # 30 recordings, 3 items each
    labels = [("a", "b", "c")[(i // 3) % 3] for i in range(90)]
    out = grouped_stratified_split(groups, labels, seed=1)
    assert set(out) == set(groups)
    for label in "abc":
        sides = {out[g] for g, lab in zip(groups, labels) if lab == label}
        assert sides == {"train", "valid", "test"}
    assert out == grouped_stratified_split(groups, labels, seed=1)
    assert out != grouped_stratified_split(groups, labels, seed=2)


def test_sentence_pools_are_seeded_and_disjoint():
    from benchmark.data.phones import sentence_pools

    sentences = [f"Sentence number {i} is here." for i in range(400)]
    a, b = sentence_pools(sentences, 0), sentence_pools(sentences, 1)
    assert a == sentence_pools(sentences, 0) and a != b
    seen = [s for pool in a.values() for s in pool]
    assert sorted(seen) == sorted(sentences)


@pytest.mark.skipif(not Path("/usr/share/sounds/sf2/TimGM6mb.sf2").exists(), reason="needs timgm6mb-soundfont")
def test_renderer_is_repeatable_whatever_came_before():
    pytest.importorskip("fluidsynth", reason="needs pyfluidsynth")
    from benchmark.data.soundfonts import Renderer

    first = Renderer()
    a = first.note("timgm6mb", 40, 60)
    second = Renderer()
    second.note("fluidr3", 0, 72)
    b = second.note("timgm6mb", 40, 60)
    assert np.array_equal(a, b) and np.abs(a).max() > 0.01


@pytest.mark.skipif(not Path("/usr/share/games/fortunes/fortunes").exists(), reason="needs the fortunes package")
def test_fortune_sentences_are_clean_prose():
    from benchmark.data.speech import fortune_sentences

    sentences = fortune_sentences()
    assert len(sentences) > 3000
    assert all(4 <= len(s.split()) <= 25 and s[-1] in ".!?" and '"' not in s for s in sentences)


@pytest.mark.skipif(shutil.which("festival") is None, reason="needs festival")
def test_festival_writes_audio_and_phone_timings(tmp_path):
    import soundfile as sf

    from benchmark.data.speech import synthesise

    assert synthesise("kal", {"u1": "The cat sat on the mat."}, tmp_path) == 1
    info = sf.info(str(tmp_path / "u1.flac"))
    assert info.samplerate == 16000 and info.duration > 1.0
