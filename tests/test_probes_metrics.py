"""Low-data subsets, metrics against hand-computed values, probes on separable features."""

import numpy as np
import pytest

from benchmark.data.manifest import Item
from benchmark.metrics import (
    METRICS,
    accuracy,
    bootstrap,
    bootstrap_weights,
    key_weighted,
    macro_f1,
    percentile_ci,
    pr_auc_macro,
    roc_auc_macro,
)
from benchmark.data.subsets import low_data_subset
from downstreams.probes import ProbeConfig
from downstreams.selection import train_probe


def make_items(n_groups: int, per_group: int = 2, seed: int = 0) -> list[Item]:
    rng = np.random.default_rng(seed)
    classes = ["common"] * 6 + ["mid"] * 3 + ["rare"]
    items = []
    for g in range(n_groups):
        label = classes[rng.integers(len(classes))] if g >= 3 else ["common", "mid", "rare"][g]
        for k in range(per_group):
            items.append(Item(id=f"g{g}_{k}", path=f"x{g}_{k}.wav", split="train", group=f"g{g}", duration_s=1.0,
                              labels=(label,), extra={"source_item": f"g{g}"}))
    return items


def test_subsets_are_nested_grouped_stratified_and_deterministic() -> None:
    items = make_items(200)
    for seed in range(3):
        previous: set[str] = set()
        for fraction in (0.01, 0.05, 0.1, 0.5, 1.0):
            subset = low_data_subset(items, fraction, seed)
            ids = {i.id for i in subset}
            assert previous <= ids  # nested
            previous = ids
            units = {i.extra["source_item"] for i in subset}
            assert ids == {i.id for i in items if i.extra["source_item"] in units}  # whole recordings only
            assert {i.labels[0] for i in subset} == {"common", "mid", "rare"}  # every class present
            assert len(subset) >= np.ceil(fraction * len(items))
        assert [i.id for i in low_data_subset(items, 0.1, seed)] == [i.id for i in low_data_subset(items, 0.1, seed)]
    assert {i.id for i in low_data_subset(items, 0.1, 0)} != {i.id for i in low_data_subset(items, 0.1, 1)}
    # Stratified: class shares in a 25% subset stay close to the full split's.
    sub = low_data_subset(items, 0.25, 0)
    share = lambda xs, c: np.mean([i.labels[0] == c for i in xs])  # noqa: E731
    for c in ("common", "mid"):
        assert abs(share(sub, c) - share(items, c)) < 0.06


def test_metrics_against_hand_computed_values() -> None:
    y = np.array([0, 0, 1, 2])
    scores = np.eye(3)[[0, 1, 1, 2]]  # predictions 0, 1, 1, 2
    assert accuracy(y, scores, ()) == 0.75
    # per-class F1: class0 P=1 R=.5 -> 2/3; class1 P=.5 R=1 -> 2/3; class2 -> 1
    assert macro_f1(y, scores, ()) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    tags = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    tag_scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.4, 0.3], [0.2, 0.1]])
    # tag0: positives .9,.4 vs negatives .1,.2 -> AUC 1; tag1: positives .8,.3 vs .2,.1 -> 1
    assert roc_auc_macro(tags, tag_scores, ()) == 1.0
    tag_scores[2, 1] = 0.15  # tag1 positive .15 now ranks below negative .2: AUC 3/4
    assert roc_auc_macro(tags, tag_scores, ()) == pytest.approx((1 + 0.75) / 2)
    # tag1 ranking .8(+) .2(-) .15(+) .1(-): AP = (1/1 + 2/3) / 2
    assert pr_auc_macro(tags, tag_scores, ()) == pytest.approx((1 + (1 + 2 / 3) / 2) / 2)
    keys = ("C major", "G major", "A minor", "C minor")
    y_key = np.array([0, 0, 0, 0])
    pred = np.eye(4)[[0, 1, 2, 3]]  # exact, fifth, relative, parallel
    assert key_weighted(y_key, pred, keys) == pytest.approx((1 + 0.5 + 0.3 + 0.2) / 4)


def test_bootstrap_is_paired_and_resamples_units() -> None:
    y = np.array([0, 1] * 50)
    good = np.eye(2)[y]
    units = np.arange(100) // 10  # ten utterances of ten frames
    assert np.all(bootstrap("accuracy", y, good, (), units) == 1.0)
    noisy = np.eye(2)[np.where(np.arange(100) % 7 == 0, 1 - y, y)]
    values = bootstrap("accuracy", y, noisy, (), units)
    lo, hi = percentile_ci(values)
    assert lo < accuracy(y, noisy, ()) < hi
    assert np.array_equal(values, bootstrap("accuracy", y, noisy, (), units))  # same resamples
    w = bootstrap_weights(units)
    assert np.all(w.reshape(len(w), 10, 10).std(2) == 0)  # a unit's rows are drawn together
    assert np.all(w.sum(1) == 100)


KEYS = ("C major", "G major", "A minor", "C minor", "F# major")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_weighted_forms_equal_the_libraries_on_repeated_rows(name: str) -> None:
    rng = np.random.default_rng(3)
    if name in ("roc_auc", "pr_auc"):
        y = (rng.random((120, 12)) > 0.8).astype(float)
        y[:, 0] = 0  # a tag with no positives is left out
        scores = np.round(rng.random((120, 12)), 1)  # many ties
    else:
        y = rng.integers(0, 5, 120)
        scores = np.round(rng.random((120, 5)), 1)
    metric, w = METRICS[name], bootstrap_weights(np.arange(120) // 3, 4)
    for b in range(len(w)):
        rows = np.repeat(np.arange(120), w[b].astype(int))
        expected = metric.value(y[rows], scores[rows], KEYS)
        assert metric.weighted(y, scores, KEYS, w[b : b + 1])[0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", [n for n in sorted(METRICS) if METRICS[n].top_class_only])
def test_bootstrap_merging_alike_rows_changes_no_value(name: str) -> None:
    # frame-level shape: 30 utterances of 40 frames, long runs of one label
    rng = np.random.default_rng(5)
    units = np.repeat(np.arange(30), 40)
    y = np.repeat(rng.integers(0, 5, 300), 4)
    scores = rng.random((1200, 5))
    merged = bootstrap(name, y, scores, KEYS, units)
    direct = METRICS[name].weighted(y, scores, KEYS, bootstrap_weights(units))
    np.testing.assert_allclose(merged, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_probe_reaches_100_percent_on_separable_features(kind: str) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 4, (4, 16))
    y = rng.integers(0, 4, 600)
    x = (centers[y] + rng.normal(0, 1, (600, 16))).astype(np.float32)
    # Three "layers": noise, the signal, noise. The weighted sum must find the signal.
    layers = np.stack([rng.normal(0, 1, x.shape).astype(np.float32), x, rng.normal(0, 1, x.shape).astype(np.float32)], 1)
    probe = train_probe(layers[:400], y[:400], layers[400:500], y[400:500], 4, False, ProbeConfig(kind=kind), seed=0)
    assert accuracy(y[500:], probe.predict(layers[500:]), ()) > 0.98
    weights = probe.model.layer_weights()
    assert weights.argmax() == 1 and weights.sum() == pytest.approx(1)
    single = train_probe(layers[:400], y[:400], layers[400:500], y[400:500], 4, False, ProbeConfig(kind=kind, layer=0), seed=0)
    assert accuracy(y[500:], single.predict(layers[500:]), ()) < 0.5  # layer 0 holds only noise


def test_multilabel_probe_learns_tags() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (500, 1, 8)).astype(np.float32)
    y = np.stack([x[:, 0, 0] > 0, x[:, 0, 1] + x[:, 0, 2] > 0], 1).astype(np.float32)
    probe = train_probe(x[:300], y[:300], x[300:400], y[300:400], 2, True, ProbeConfig(), seed=0)
    assert roc_auc_macro(y[400:], probe.predict(x[400:]), ()) > 0.97


def test_frame_rows_follow_segments_and_a_row_cap_samples_them() -> None:
    from pathlib import Path

    from benchmark.data.manifest import Dataset
    from benchmark.data.probe_rows import build_rows

    # three 1 s utterances at 10 frames/s; frames outside every segment carry no label
    items = [Item(f"u{i}", Path(f"u{i}.wav"), "train", f"g{i}", 1.0, segments=((0.0, 0.5, "a"), (0.5, 0.9, "b")))
             for i in range(3)]
    ds = Dataset("toy", "frame", "multiclass", ("a", "b"), tuple(items), Path("."))
    feats = {f"u{i}": np.arange(2 * 10 * 4, dtype=np.float32).reshape(2, 10, 4) + 1000 * i for i in range(3)}
    full = build_rows(ds, items, feats, 10.0)
    assert full.x.shape == (27, 2, 4)  # 9 labelled frames each, (rows, layers, dim)
    assert list(full.y[:9]) == [0] * 5 + [1] * 4 and list(full.unit) == [0] * 9 + [1] * 9 + [2] * 9
    assert np.array_equal(full.x[10], feats["u1"][:, 1])  # frame 1 of utterance 1, every layer
    capped = build_rows(ds, items, feats, 10.0, max_rows=10, seed=4)
    assert capped.x.shape == (10, 2, 4)
    positions = [next(j for j in range(27) if np.array_equal(full.x[j], row)) for row in capped.x]
    assert positions == sorted(positions)  # a subset of the rows, in order, labels and units kept
    assert np.array_equal(full.y[positions], capped.y) and np.array_equal(full.unit[positions], capped.unit)
    assert np.array_equal(build_rows(ds, items, feats, 10.0, max_rows=10, seed=4).x, capped.x)
    assert not np.array_equal(build_rows(ds, items, feats, 10.0, max_rows=10, seed=5).x, capped.x)
    assert build_rows(ds, items, feats, 10.0, max_rows=100).x.shape == full.x.shape
