"""The report's statistics on synthetic runs.jsonl files with known effects: corrected verdicts,
budgets that are one subset, the low-data interaction, and intervals at the independent unit."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics import bootstrap, percentile_ci
from benchmark.report.bootstrap import benjamini_hochberg, hierarchical_se, hierarchical_variance, variance_parts
from benchmark.report.power import Z_POWER, Detectability, detectability
from benchmark.report.summary import Budget, budgets, collect, compare, identical_controls
from benchmark.report.text import interactions
from benchmark.report.write import write_report
from benchmark.tasks import ReportSpec

N_BOOT = 200


def record(upstream: str, task: str, fraction: float, seed: int, value: float, noise: np.ndarray,
           subset: str | None = None, variant: str | None = None) -> dict:
    """A probe record whose bootstrap replicates are `value + noise` (noise shared = paired)."""
    boot = (value + noise).round(6).tolist()
    return {
        "run_id": f"{upstream}-{variant}-{task}-{fraction}-{seed}", "upstream": upstream, "upstream_options": {},
        "variant": variant, "checkpoint_sha256": None, "task": task, "dataset": task, "quick": False,
        "fraction": fraction, "seed": seed, "layer": None, "headline_metric": "accuracy",
        "metrics": {"accuracy": {"value": value, "ci95": [value - 0.02, value + 0.02]}}, "bootstrap": {"accuracy": boot},
        "n_test_items": 100, "n_train_items": int(1000 * fraction), "subset_sha256": subset or f"{fraction}-{seed}",
        "train_s": 0.1, "git_revision": "abc", "date": "2026-01-01",
    }


def family(effects: dict[tuple[str, float], float], n_tasks: int, fractions: tuple[float, ...], seed: int = 0,
           sd: float = 0.02) -> list[dict]:
    """Mel and `learned` on `n_tasks` tasks; `effects[(task, fraction)]` is the true effect (default 0).

    Each (task, fraction, seed) has its own test-resample noise shared by both upstreams, and
    each upstream's point value its own seed noise of `sd`: the null holds where the effect is 0.
    """
    rng = np.random.default_rng(seed)
    records = []
    for t in range(n_tasks):
        task = f"task{t}"
        for fraction in fractions:
            for s in range(3):
                shared = rng.normal(0, sd, N_BOOT)
                for upstream, shift in (("mel", 0.0), ("learned", effects.get((task, fraction), 0.0))):
                    value = 0.5 + shift + rng.normal(0, sd)
                    records.append(record(upstream, task, fraction, s, value, shared + rng.normal(0, sd / 2, N_BOOT)))
    return records


def test_a_null_family_gives_at_most_the_expected_false_discoveries() -> None:
    discoveries, raw = [], []
    for seed in range(5):
        comps = compare(collect(family({}, n_tasks=30, fractions=(0.01, 0.05, 0.1, 1.0), seed=seed)))
        assert len(comps) == 120
        discoveries.append(sum(c.significant for c in comps))
        raw.append(sum(c.effect["excludes_zero"] for c in comps))
    # Under the global null BH keeps the chance of any discovery at or below 5%: over five
    # families of 120 we allow one; uncorrected 95% intervals exclude zero in about 6 of 120.
    assert sum(discoveries) <= 1
    assert sum(raw) > 5 * 2


def test_a_planted_effect_survives_the_correction() -> None:
    comps = compare(collect(family({("task3", 0.01): 0.15}, n_tasks=30, fractions=(0.01, 0.05, 0.1, 1.0))))
    found = [c for c in comps if c.significant]
    assert [(c.task, c.budget.fraction, c.verdict) for c in found] == [("task3", 0.01, "better")]


def test_benjamini_hochberg_step_up() -> None:
    # m = 4, q = 0.05: the sorted p-values face thresholds .0125 .025 .0375 .05
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.2]) == [True, False, False, False]
    # step-up: .03 misses its own threshold (.025), but .035 meets rank 3's, so both are rejected
    assert benjamini_hochberg([0.01, 0.035, 0.03, 0.2]) == [True, True, True, False]
    assert benjamini_hochberg([0.03, 0.9]) == [False, False]  # .03 > .05 * 1 / 2


def test_fractions_that_give_the_same_subsets_are_one_budget(tmp_path: Path) -> None:
    records = family({}, n_tasks=1, fractions=(0.01, 0.05, 1.0))
    for r in records:  # the class floor made the 1% and 5% subsets equal for every seed
        if r["fraction"] in (0.01, 0.05):
            r["subset_sha256"] = f"floor-{r['seed']}"
            r["n_train_items"] = 24
    table = collect(records)
    (budget_small, budget_all), = budgets(table).values()
    assert budget_small.fractions == (0.01, 0.05) and budget_all.fractions == (1.0,)
    assert budget_small.label() == "1% = 5% (24 items)"
    assert len(compare(table)) == 2  # counted once, not twice
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    assert "| upstream | 1% = 5% (24 items) | 100% (1000 items) |" in (tmp_path / "leaderboard.md").read_text()
    assert "Across 2 comparisons" in (tmp_path / "REPORT.md").read_text()


@pytest.mark.parametrize("small_effect, verdict", [(0.12, "fewer labels favour the learned features"),
                                                   (-0.12, "fewer labels favour Mel"),
                                                   (0.0, "no measurable change")])
def test_the_low_data_interaction_has_the_planted_sign(small_effect: float, verdict: str, tmp_path: Path) -> None:
    records = family({("task0", 0.01): small_effect}, n_tasks=1, fractions=(0.01, 1.0), sd=0.01)
    (i,) = interactions(collect(records))
    assert (i["task"], i["label"], i["small_budget"], i["large_budget"]) == ("task0", "learned", 0.01, 1.0)
    assert i["lo"] <= i["change"] <= i["hi"]
    if small_effect:
        assert np.sign(i["change"]) == np.sign(small_effect) and (i["lo"] > 0 or i["hi"] < 0)
        assert abs(i["change"] - small_effect) < 0.05
    else:
        assert i["lo"] < 0 < i["hi"]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    assert verdict in (tmp_path / "REPORT.md").read_text()
    assert (tmp_path / "summary.png").stat().st_size > 0


def test_correlated_crops_widen_the_interval_when_their_track_is_the_unit() -> None:
    # 40 tracks x 10 crops; whether a crop is right depends on its track (crops of one track agree)
    rng = np.random.default_rng(0)
    track = np.repeat(np.arange(40), 10)
    right = np.repeat(rng.random(40) < 0.6, 10)
    y = np.zeros(400, int)
    scores = np.eye(2)[np.where(right, 0, 1)]
    lo_crop, hi_crop = percentile_ci(bootstrap("accuracy", y, scores, ("a", "b"), np.arange(400)))
    lo_track, hi_track = percentile_ci(bootstrap("accuracy", y, scores, ("a", "b"), track))
    assert hi_track - lo_track > 2 * (hi_crop - lo_crop)  # 40 independent units, not 400


def test_the_report_keeps_the_latest_inputs_and_names_what_it_left_out() -> None:
    from benchmark.report.provenance import current_records

    noise = np.zeros(N_BOOT)
    old = [{**record(u, "t", 1.0, 0, 0.5, noise), "code_sha256": "c1" if u == "learned" else None}
           for u in ("mel", "learned")]
    new = [{**record(u, "t", 1.0, 0, 0.6, noise), "date": "2026-02-01", "code_sha256": "c2" if u == "learned" else None}
           for u in ("mel", "learned")]
    kept, notes = current_records([*old, *new])  # the learned upstream's code changed; Mel's inputs did not
    assert kept == [old[0], *new]
    assert notes == ["- **learned x t**: 1 record(s) of older upstream code or checkpoint left out; the tables use "
                     "code `c2`, checkpoint `none`."]
    edited = [{**r, "dataset_sha256": "d2"} for r in new]  # then the dataset was edited
    kept, notes = current_records([*old, *edited])
    assert kept == edited and notes == ["- **t**: 2 record(s) of an older dataset fingerprint left out; the tables "
                                        "use the latest (`d2`)."]
    mixed = [edited[0], {**edited[1], "git_revision": "def"}]
    kept, notes = current_records(mixed)
    assert kept == mixed and notes == ["- The kept records come from 2 melbench revisions:",
                                       "  - `abc`: mel x t", "  - `def`: learned x t"]
    regridded = [{**r, "date": "2026-03-01", "probe_grid": {"l2": [0.1, 1.0]}} for r in edited]  # tasks.yaml's grid
    kept, notes = current_records([*edited, *regridded])
    assert kept == regridded and notes == ["- **t**: 2 record(s) of an older probe protocol (grid or iterations of "
                                           "`tasks.yaml`) left out; the tables use the latest."]


def test_the_scarce_budgets_follow_the_records_scarce_fraction(tmp_path: Path) -> None:
    records = family({("task0", 0.1): 0.2}, n_tasks=1, fractions=(0.01, 0.1, 1.0), sd=0.01)
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)  # older records without the field: the tasks.yaml default, 5%
    assert "budgets of at most 5% of the training split" in (tmp_path / "REPORT.md").read_text()
    assert "holds on 0 of 1 task(s)" in (tmp_path / "REPORT.md").read_text()  # the 10% effect is not scarce
    for r in records:
        r["scarce_fraction"] = 0.1  # as `melbench run` writes it from `tasks.yaml`
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    assert "budgets of at most 10% of the training split" in (tmp_path / "REPORT.md").read_text()
    assert "holds on 1 of 1 task(s): task0" in (tmp_path / "REPORT.md").read_text()


def test_bit_identical_controls_are_compared_once(tmp_path: Path) -> None:
    records = family({}, n_tasks=2, fractions=(0.01, 1.0))
    mel = [r for r in records if r["upstream"] == "mel"]
    control = [{**r, "upstream": "a", "variant": "random"} for r in records if r["upstream"] == "learned"]
    same = [{**r, "upstream": "b", "variant": "random"} for r in control]  # the same encoder and initial weights
    other = [{**r, "upstream": "c", "variant": "random"} for r in control]
    other[-1] = {**other[-1], "metrics": {"accuracy": {"value": 0.1, "ci95": [0.0, 0.2]}}}  # one run differs
    table = collect(mel + control + same + other)
    assert identical_controls(table) == {"b[random]": "a[random]"}
    assert sorted({c.label for c in compare(table)}) == ["a[random]", "c[random]"]
    assert {i["label"] for i in interactions(table)} == {"a[random]", "c[random]"}
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mel + control + same + other))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert "b[random] gave exactly the results of a[random] in every probe run" in report
    assert "over all 8 comparisons" in report


def test_the_setup_table_says_how_each_row_was_pretrained(tmp_path: Path) -> None:
    full = {"preset": "small", "params": 1_000_000, "corpus": "mix", "corpus_train_hours": 16.5, "steps": 400,
            "batch_size": 8, "crop_s": 3.0, "pretrain_s": 113.0, "device": "cpu", "final_val_loss": 0.44}
    rows = {None: (None, full), "random": (0, {**full, "steps": 0, "pretrain_s": None, "device": None}),
            "step=50": (50, {**full, "steps": 50, "pretrain_s": None, "device": None})}
    records = [r for r in family({}, n_tasks=1, fractions=(0.01, 1.0)) if r["upstream"] == "mel"]
    for variant, (step, prov) in rows.items():
        records += [{**r, "upstream": "learned", "variant": variant, "pretrain_step": step,
                     "upstream_provenance": prov} for r in family({}, n_tasks=1, fractions=(0.01, 1.0))
                    if r["upstream"] == "learned"]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    setup = {line.split(" | ")[0]: line for line in report[report.index("## Setup"):].splitlines()
             if line.startswith("| learned") and "| small |" in line}
    assert "113 s on cpu" in setup["| learned"]
    assert "none (the control)" in setup["| learned[random]"]
    assert "within the full run's" in setup["| learned[step=50]"]
    assert "?" not in "".join(setup.values())


def test_the_answer_names_the_tasks_won_at_every_scarce_budget(tmp_path: Path) -> None:
    planted = {("task0", 0.01): 0.2, ("task0", 0.05): 0.2, ("task1", 0.01): 0.2}  # task1 loses its 5% advantage
    records = family(planted, n_tasks=2, fractions=(0.01, 0.05, 1.0), sd=0.01)
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert "holds on 2 of 2 task(s): task0, task1; at every scarce budget of a task, one upstream holds it on at " \
           "most 1 task(s): learned (task0)." in report
    task1 = [r for r in records if r["task"] == "task1"]  # won at 1% only
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task1))
    write_report(tmp_path)
    assert "no upstream holds it at every scarce budget of any task" in (tmp_path / "REPORT.md").read_text()


def test_the_report_settings_decide_the_verdicts(tmp_path: Path) -> None:
    planted = {("task0", 0.01): 0.05, ("task0", 0.05): 0.05}  # a real advantage of 0.05
    records = family(planted, 1, (0.01, 0.05, 1.0), sd=0.01)
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert "A significant advantage of at least 0.03 with scarce labels holds on 1 of 1 task(s): task0" in report
    assert "the learned features were better in **2**" in report
    write_report(tmp_path, ReportSpec(min_effect=0.1))  # a stricter bar than the planted effect
    report = (tmp_path / "REPORT.md").read_text()
    assert "A significant advantage of at least 0.1 with scarce labels holds on 0 of 1 task(s);" in report
    q = min(c.effect["p"] for c in compare(collect(records))) / 2  # below every p-value: nothing survives
    write_report(tmp_path, ReportSpec(fdr_q=q))
    report = (tmp_path / "REPORT.md").read_text()
    assert f"false-discovery rate {q * 100:g}%) the learned features were better in **0**, worse in **0**" in report
    assert f"significant after Benjamini-Hochberg at FDR {q * 100:g}% over all 3 comparisons" in report


def test_the_time_split_adds_each_cost_once(tmp_path: Path) -> None:
    mel = [{**r, "train_s": 6.0, "extract_s": 30.0} for r in family({}, n_tasks=1, fractions=(0.01, 1.0))
           if r["upstream"] == "mel"]
    prov = {"preset": "small", "pretrain_s": 120.0}
    model = [{**r, "upstream": "a", "train_s": 3.0, "extract_s": 60.0, "upstream_provenance": prov} for r in mel]
    control = [{**r, "variant": "random", "upstream_provenance": {**prov, "pretrain_s": None}} for r in model]
    copied = [{**r, "upstream": "b", "same_features_as": "a[random]"} for r in control]  # cost nothing
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mel + model + control + copied))
    write_report(tmp_path)
    lines = (tmp_path / "REPORT.md").read_text().splitlines()
    assert "| a | 2.0 | 2.0 | 0.3 | 0.3 |  |" in lines  # 6 probes x 3 s each for model and control
    assert "| mel |  | 0.5 | 0.6 |  |  |" in lines
    assert not any(line.startswith("| b |") for line in lines)
    assert any("All of the above: 5.7 minutes." in line for line in lines)  # 2 + 0.5 + 2 x 1 + 72 s of probes


def _seed_values(rng: np.random.Generator, n_seeds: int, sd_subset: float, sd_shared: float,
                 sd_own: float, n_boot: int = 4000) -> np.ndarray:
    """`(seeds, replicates)` values e_s + c_b + u_sb (`bootstrap.variance_parts`' model)."""
    subset = rng.normal(0, sd_subset, (n_seeds, 1))
    return subset + rng.normal(0, sd_shared, n_boot) + rng.normal(0, sd_own, (n_seeds, n_boot))


def test_the_variance_parts_predict_the_bootstrap_at_other_numbers_of_seeds() -> None:
    rng = np.random.default_rng(0)
    parts = variance_parts(_seed_values(rng, 3, 0.0, 0.02, 0.03))
    assert parts["shared"] == pytest.approx(0.02**2, rel=0.15)
    assert parts["own"] == pytest.approx(0.03**2, rel=0.1)
    assert parts["across"] == pytest.approx(0.03**2, rel=0.1)
    for n_seeds in (1, 3, 12, 40):  # the same model measured with other numbers of seeds
        measured = hierarchical_se(_seed_values(rng, n_seeds, 0.0, 0.02, 0.03)) ** 2
        assert hierarchical_variance(parts, n_seeds) == pytest.approx(measured, rel=0.2)
    assert variance_parts(rng.normal(0, 0.03, (5, 4000)))["shared"] < 0.1 * 0.02**2  # independent seeds share nothing
    assert variance_parts(rng.normal(0, 0.03, (1, 4000)))["shared"] == 0.0  # one seed: nothing to compare
    values = _seed_values(rng, 4, 0.02, 0.01, 0.02)  # with the subsets' own effects, at the measured seeds
    assert hierarchical_variance(variance_parts(values), 4) == pytest.approx(hierarchical_se(values) ** 2, rel=0.15)


def _test_noise_family(n_seeds: int, sd_shared: float, sd_own: float, seed: int = 0) -> list[dict]:
    """Mel and `learned` on one task at 1% and 100% with the same point values; learned's replicates
    add noise common to every seed (`sd_shared`) and noise of each seed's own (`sd_own`)."""
    rng = np.random.default_rng(seed)
    records = []
    for fraction in (0.01, 1.0):
        common = rng.normal(0, sd_shared, N_BOOT)
        for s in range(n_seeds):
            base = rng.normal(0, 0.01, N_BOOT)
            records.append(record("mel", "task0", fraction, s, 0.5, base))
            records.append(record("learned", "task0", fraction, s, 0.5, base + common + rng.normal(0, sd_own, N_BOOT)))
    return records


def test_the_seeds_the_report_asks_for_give_the_standard_error_it_predicts(tmp_path: Path) -> None:
    (row,) = detectability(compare(collect(_test_noise_family(3, sd_shared=0.005, sd_own=0.02))))
    assert row.n_seeds == 3 and row.budget.fraction == 0.01
    needed = row.seeds_for(0.03)
    # The model: se(S)² = 0.005² + 0.02² (2S - 1) / S², and 0.03 / 2.80 is reached from S = 9 on.
    assert needed is not None and 7 <= needed <= 11
    (more,) = detectability(compare(collect(_test_noise_family(needed, sd_shared=0.005, sd_own=0.02, seed=1))))
    assert more.smallest == pytest.approx(0.03, abs=0.006)  # measured with that many seeds
    assert row.smallest > 0.03 + 0.006  # and three seeds were not enough
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _test_noise_family(3, 0.005, 0.02)))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert f"| task0 | 1% (10 items) | 3 | 1 | {row.se:.4f} | {row.smallest:.3f} | " in report
    assert f"| {needed} |" in report
    assert "more seeds would find it at task0 at 1%; no number of seeds at none." in report


def test_a_test_split_too_small_for_the_advantage_is_named(tmp_path: Path) -> None:
    records = _test_noise_family(3, sd_shared=0.02, sd_own=0.02)  # the shared part alone: 2.80 x 0.02 = 0.056
    (row,) = detectability(compare(collect(records)))
    assert row.seeds_for(0.03) is None and row.floor == pytest.approx(0.056, abs=0.012)
    assert row.seeds_for(0.1) is not None  # a larger advantage is within reach of more seeds
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert f"| none: the test split alone leaves {row.floor:.3f} |" in report
    assert "no number of seeds at task0 at 1%." in report


def test_the_seeds_asked_for_agree_with_the_measured_smallest_advantage() -> None:
    """The measured standard error decides whether the run's seeds suffice; the model, built from
    medians over upstreams, only says how many fewer or more would, even where the two disagree."""
    def row(se: float, own: float) -> Detectability:
        parts = {"shared": 0.0, "own": own**2, "across": own**2}  # se(S)² = own² (2S - 1) / S²
        return Detectability("task0", Budget((0.01,), None, None, None), 2, 3, se, parts)
    found, missed = 0.03 / Z_POWER * 0.9, 0.03 / Z_POWER * 1.5  # measured at the run's 3 seeds
    assert row(found, own=0.003).seeds_for(0.03) == 2  # the model agrees: fewer would do
    assert row(found, own=0.02).seeds_for(0.03) == 3  # the model asks for 7: these 3 did it
    assert row(missed, own=0.003).seeds_for(0.03) == 4  # the model says 2 would do: these 3 did not
    assert row(missed, own=0.02).seeds_for(0.03) == 7
    nan_parts = {"shared": float("nan"), "own": 0.0, "across": 0.0}
    assert Detectability("task0", Budget((0.01,), None, None, None), 2, 3, missed, nan_parts).seeds_for(0.03) is None


def test_one_seed_leaves_the_seeds_needed_unknown(tmp_path: Path) -> None:
    records = _test_noise_family(1, sd_shared=0.005, sd_own=0.03)
    (row,) = detectability(compare(collect(records)))
    assert row.n_seeds == 1 and row.smallest > 0.03 and row.seeds_for(0.03) is None
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_report(tmp_path)
    report = (tmp_path / "REPORT.md").read_text()
    assert "| unknown with one seed |" in report
    assert "no number of seeds at none; unknown with one seed at task0 at 1%." in report


@pytest.mark.parametrize("n_models", [7, 12])
def test_line_colours_tell_models_apart_and_pair_controls(n_models: int) -> None:
    """Each model has its own colour (past matplotlib's 10-colour cycle too), and its untrained
    control, with or without options, has the model's."""
    from benchmark.report.plots import line_colours

    models = ["mel"] + [f"up{i:02d}" for i in range(n_models - 1)]
    labels = models + [f"{m}[random]" for m in models[1:]] + ["up00[layer=3]", "up00[random, layer=3]"]
    colours = line_colours(labels)
    assert len({colours[m] for m in models + ["up00[layer=3]"]}) == n_models + 1
    for m in models[1:]:
        assert colours[f"{m}[random]"] == colours[m]
    assert colours["up00[random, layer=3]"] == colours["up00[layer=3]"]
