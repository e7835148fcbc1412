"""Which of an upstream's layers should the linear probe read? Validation split only.

    python scripts/probe_layers.py --upstreams mel,tera --tasks pitch,instrument \
        --fractions 0.01,0.05,1.0 --pretrain-steps 12800 --out /tmp/probe_layers

The probe of the runs kept up to revision 4cc1039 (`layer_choice: weighted`) learns a
softmax-weighted sum of the layers (SUPERB's weighting) jointly with its head, by L-BFGS on the
labelled subset. That objective is not convex and its weights can settle on a layer that fits
the training rows best rather than the one that generalises. This script, the measurement
behind `layer_choice: validation` (docs/probes.md), probes each upstream's checkpoint (`--pretrain-steps`: the one `melbench run
--pretrain-steps N` pretrains; default the 400-step default) exactly as `melbench run` does (same
labelled subsets, standardisation, L2 grid walk chosen on validation) reading each of:

    weighted  the learned softmax-weighted sum of the layers
    layer k   layer k alone
    concat    every layer side by side: convex logistic regression on layers x dim inputs, which
              holds every weighted sum as a special case (head k = weight k x the shared head)
    mean      the layers standardised (labelled-subset statistics) and averaged: fixed uniform
              weights, the weighted sum's starting point

and prints, per (task, fraction, upstream), each reading's selected probe's validation score
minus the first upstream's (Mel: one layer, so every reading is the same probe), mean over the
seeds where every reading is done, with the layer whose own path scored best in each seed (the
"layer chosen" of `layer_choice: validation`) and the time of the single-layer paths over the
weighted probe's (the table of docs/probes.md). The test split is never loaded into a probe or scored. Resumable:
every (upstream, task, fraction, seed, reading) is one line of OUT/layers.jsonl, reused only for
the same inputs (checkpoint, dataset, labelled subset, probe settings).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmark.commands import comma_list
from benchmark.errors import MelbenchError
from benchmark.measurements import pair_runners
from benchmark.run import RunConfig
from benchmark.runs import RunLog, run_id
from benchmark.tasks import TaskSpec, load_tasks, select_tasks
from downstreams.probes import STD_FLOOR


def readings(num_layers: int) -> list[str]:
    """The layer readings probed for an upstream with `num_layers` layers (one for Mel)."""
    if num_layers == 1:
        return ["weighted"]
    return ["weighted", *(f"layer {k}" for k in range(num_layers)), "concat", "mean"]


def view(x: np.ndarray, reading: str, train_x: np.ndarray) -> np.ndarray:
    """`(rows, layers, dim)` features as the probe of `reading` takes them (`train_x`: the
    labelled subset's rows, whose statistics the `mean` reading standardises with)."""
    if reading == "weighted":
        return x
    if reading == "concat":
        return x.reshape(len(x), 1, -1)  # (B, L, D) -> (B, 1, L * D)
    if reading == "mean":
        mean, std = train_x.mean(0), train_x.std(0) + STD_FLOOR  # (L, D), as the probe's own standardisation
        return ((x - mean) / std).mean(1, keepdims=True, dtype=np.float32)  # (B, L, D) -> (B, 1, D)
    k = int(reading.removeprefix("layer "))
    return x[:, k : k + 1]  # (B, 1, D): a one-layer weighted sum is that layer


def probe_all(upstreams: tuple[str, ...], tasks: dict[str, TaskSpec], fractions: list[float], seeds: int,
              steps: int | None, out: Path) -> set[str]:
    """Append one validation-only result per (upstream, task, fraction, seed, reading) to
    OUT/layers.jsonl, skipping those already there for the same inputs.

    Args:
        upstreams: upstream names, the reference first.
        tasks: task specs by name.
        fractions: label fractions.
        seeds: seeds per fraction.
        steps: the checkpoint of `melbench run --pretrain-steps`; None for the default one.
        out: the output folder.

    Returns:
        The inputs of this call's probes (the `run_id` `melbench run` gives the same labelled
        subset, checkpoint, dataset and probe settings): a line is reused only for the same inputs,
        and `table` reads only these.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "layers.jsonl"
    done = {(r["inputs"], r["key"][4]) for r in map(json.loads, path.read_text().splitlines())} if path.exists() else set()
    current: set[str] = set()
    cfg = RunConfig(upstreams=upstreams, tasks=tasks, out_dir=out, layer_sweep=False, progress=False,
                    validation_only=True, pretrain_steps=steps)
    with RunLog(out) as log, path.open("a") as sink:
        for runner in pair_runners(cfg, log):
            for fraction in fractions:
                for seed in range(seeds):
                    inputs = run_id(runner.ident(fraction, seed, None))
                    current.add(inputs)
                    todo = [r for r in readings(runner.num_layers) if (inputs, r) not in done]
                    if not todo:
                        continue
                    _, train = runner.training_rows(fraction, seed)
                    for reading in todo:
                        start = time.perf_counter()
                        # each reading says which layers the probe sees: "weighted" must be the learned
                        # weighted sum whatever the task's `layer_choice`, the others have one layer
                        chosen = runner.select(view(train.x, reading, train.x), train.y,
                                               view(runner.valid.x, reading, train.x), seed, layer_choice="weighted")
                        weights = chosen.probe.model.layer_weights()
                        sink.write(json.dumps({
                            "key": [runner.upstream, runner.task, fraction, seed, reading], "inputs": inputs,
                            "layers": runner.num_layers, "valid_score": chosen.score,
                            "valid_loss": round(chosen.probe.best_valid_loss, 6),
                            "l2": chosen.config.l2, "at_edge": chosen.at_edge,
                            "layer_weights": None if weights is None else [round(float(w), 4) for w in weights],
                            "probe_s": round(time.perf_counter() - start, 4),
                        }) + "\n")
                        sink.flush()
                        print(f"  {runner.upstream} {runner.task} {fraction:g} seed {seed} {reading}: "
                              f"{chosen.score:.3f}", flush=True)
    return current


def table(upstreams: tuple[str, ...], out: Path, current: set[str]) -> list[str]:
    """Markdown rows: per (task, fraction, upstream), each reading's validation score minus the
    first upstream's (mean over seeds), the layer chosen in each seed (its own path's best score,
    ties to the lower validation loss, then the lower layer, as `select_probe` ranks), and the
    probe time of the single-layer paths over the weighted probe's.

    Args:
        upstreams: upstream names, the reference first.
        out: the folder `probe_all` wrote.
        current: the inputs `probe_all` returned; lines of other inputs are left out.

    Returns:
        The table's lines, header first.
    """
    lines = [json.loads(line) for line in (out / "layers.jsonl").read_text().splitlines()]
    recs = [r for r in lines if r["inputs"] in current]
    by_seed: dict[tuple, dict[str, dict]] = {}
    for r in recs:
        upstream, task, fraction, seed, reading = r["key"]
        by_seed.setdefault((task, fraction, upstream, seed), {})[reading] = r
    rows = [f"| task | labels | upstream | seeds | {upstreams[0]} | weighted | layer chosen (layers) | concat | mean | "
            "time: layers / weighted |", "|---|---|---|---|---|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(upstreams)}
    cells = sorted({k[:3] for k in by_seed if k[2] != upstreams[0]}, key=lambda c: (c[0], c[1], order[c[2]]))
    for task, fraction, upstream in cells:
        diffs: dict[str, list[float]] = {}
        chosen, ratios, refs = [], [], []
        for (t, f, u, seed), got in sorted(by_seed.items()):
            ref = by_seed.get((t, f, upstreams[0], seed), {}).get("weighted")
            if (t, f, u) != (task, fraction, upstream) or ref is None:
                continue
            if not set(readings(next(iter(got.values()))["layers"])) <= set(got):
                continue  # a seed not finished for every reading
            layers = [k for k in got if k.startswith("layer ")]
            best = max(layers, key=lambda k: (got[k]["valid_score"], -got[k]["valid_loss"], -int(k.split()[1])))
            for name, score in (("weighted", got["weighted"]["valid_score"]), ("chosen", got[best]["valid_score"]),
                                ("concat", got["concat"]["valid_score"]), ("mean", got["mean"]["valid_score"])):
                diffs.setdefault(name, []).append(score - ref["valid_score"])
            chosen.append(best.split()[1])
            ratios.append(sum(got[k]["probe_s"] for k in layers) / max(got["weighted"]["probe_s"], 1e-4))
            refs.append(ref["valid_score"])
        if not chosen:
            continue
        mean = {name: f"{np.mean(values):+.3f}" for name, values in diffs.items()}
        rows.append(f"| {task} | {fraction:.0%} | {upstream} | {len(chosen)} | {np.mean(refs):.3f} | {mean['weighted']} | "
                    f"{mean['chosen']} ({','.join(chosen)}) | {mean['concat']} | {mean['mean']} | {np.mean(ratios):.1f}x |")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Probe every reading, then print the table (command line: see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstreams", default="mel,tera", help="the first is the reference")
    parser.add_argument("--tasks", default="pitch,instrument")
    parser.add_argument("--fractions", default="0.01,0.05,1.0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pretrain-steps", type=int, default=None, help="the checkpoint of this many steps")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        tasks = select_tasks(load_tasks(), comma_list(args.tasks))
    except MelbenchError as err:
        sys.exit(f"probe_layers: {err}")
    upstreams, out = comma_list(args.upstreams), Path(args.out)
    current = probe_all(upstreams, tasks, [float(f) for f in comma_list(args.fractions)],
                        args.seeds, args.pretrain_steps, out)
    print("\n".join(table(upstreams, out, current)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
