"""`melbench pretrain`: the training loop shared by every self-supervised upstream.

The objective lives with the upstream (`SPEC.model_cls.forward` returns the loss); this loop
does the rest: corpus log-Mel and its per-bin statistics, seeded crops, AdamW with linear
warm-up then linear decay and gradient clipping, bf16 autocast on CUDA, DDP under `torchrun`
(gloo on CPU, NCCL on GPU), validation loss on held-out files, atomic safetensors checkpoints
and exact `--resume`.

Reproducibility: before each step the global torch RNG (dropout, masks, Gumbel noise) and the
data generator are reseeded from `(train_seed, step, rank)`, and the learning rate is a pure
function of the step, so a run resumed from step k continues exactly as if never stopped.
"""

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from benchmark.config import config_dict
from benchmark.errors import MelbenchError
from benchmark.pretraining.checkpoints import DEFAULT_CHECKPOINT, CheckpointPlan, checkpoint_dir
from benchmark.pretraining.frames import MelCorpus, load_mel_corpus, resolve_corpus, sample_batch, seed_for
from benchmark.pretraining.train_state import (STATE_FILE, count_parameters, finished_record, load_checkpoint, read_record,
                                   save_checkpoint, save_snapshot)

VAL_BATCHES = 4


@dataclass(frozen=True)
class PretrainOptions:
    """What `melbench pretrain` was asked to do."""

    upstream: str
    corpus: str = DEFAULT_CHECKPOINT.corpus
    quick: bool = False  # the quick build of a named corpus
    preset: str = "small"
    steps: int | None = None  # total steps (the schedule length); default: the config's max_steps
    minutes: float | None = None  # stop after this wall time (the schedule still spans the steps)
    out: Path | None = None
    resume: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: int = 200
    val_every: int = 200
    stop_after: int | None = None  # stop at this step as if interrupted (for tests of --resume)
    # also keep the weights at these steps (step 0: the untrained control, corpus statistics set)
    # as loadable checkpoints under `out/steps/<step>/`, for the pretraining-compute curve
    snapshot_steps: tuple[int, ...] = ()
    device: str | None = None
    progress: bool = True


@dataclass
class PretrainResult:
    """Where the checkpoint went and how training went."""

    out: Path
    step: int
    val_loss: list[tuple[int, float]]
    audio_s_per_s: float
    parameters: int


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def _distributed(device: str | None) -> tuple[int, int, torch.device]:
    """Join the `torchrun` process group if there is one; returns (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available() and device in (None, "cuda")
    if device not in (None, "cuda", "cpu"):
        raise MelbenchError(f"--device {device!r}: expected cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise MelbenchError("--device cuda: no CUDA device is available")
    dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return rank, world, dev


def validation_loss(model: torch.nn.Module, corpus: MelCorpus, config: Any, device: torch.device) -> float:
    """Mean loss on fixed crops of the held-out files with fixed masks (same value for same weights)."""
    crop_frames = round(config.crop_s * corpus.frame_rate)
    generator = torch.Generator().manual_seed(seed_for(config.train_seed, "val-data"))
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad(), _autocast(device):
        for i in range(VAL_BATCHES):
            mel, frames = sample_batch(corpus.val, config.batch_size, crop_frames, generator)
            torch.manual_seed(seed_for(config.train_seed, "val-mask", i))
            loss, _ = model(mel.to(device), frames.to(device), 0)
            total += float(loss)
    model.train(was_training)
    return total / VAL_BATCHES


def snapshot_dir(out: Path, step: int) -> Path:
    """Where `pretrain` keeps the weights of step `step` (`PretrainOptions.snapshot_steps`)."""
    return Path(out) / "steps" / f"{step:07d}"


def snapshots(out: Path) -> dict[int, Path]:
    """The snapshot checkpoints of a pretraining folder, by step (empty if it keeps none)."""
    found = {}
    for folder in sorted((Path(out) / "steps").glob("[0-9]" * 7)):
        if (folder / "config.json").is_file():  # written last: a snapshot without it is incomplete
            found[int(folder.name)] = folder
    return found


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def config_record(spec: Any, config: Any, preset: str, corpus: str, step: int) -> dict[str, Any]:
    """The `config.json` record of a checkpoint."""
    return {"upstream": spec.name, "preset": preset, "corpus": corpus, "step": step, "config": config_dict(config)}


def ensure_pretrained(name: str, plan: CheckpointPlan, progress: bool = True,
                      given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint `melbench run` uses for an upstream melbench pretrains, pretraining it
    first (building the corpus where missing) if it does not exist or was killed before its end;
    one of a recipe other than today's preset is set aside first (`_set_aside_if_stale`).

    Args:
        name: the upstream (its module defines `SPEC`).
        plan: what to pretrain (`benchmark.pretraining.checkpoints.run_plan`).
        progress: show the pretraining progress bar.
        given: the user's options; a `checkpoint` (or `random_init`) among them is used as
            given, and nothing is pretrained.

    Returns:
        `load` options: `{"checkpoint": folder}`, or `{}` when `given` names the model.
    """
    from benchmark.data.build import build

    if given and (given.get("checkpoint") is not None or given.get("random_init")):
        return {}
    folder = plan.folder(name)
    _set_aside_if_stale(name, plan, folder)
    if finished_record(folder) is None:
        build(quick=plan.quick)  # the pretraining corpus (idempotent: seconds when already built)
        print(f"{name}: pretraining {plan.preset} on {plan.corpus_name} for {plan.steps} steps -> {folder}", flush=True)
        # resume=True continues a killed earlier attempt exactly, or starts afresh if there is none.
        pretrain(PretrainOptions(upstream=name, corpus=plan.corpus, quick=plan.quick, preset=plan.preset,
                                 steps=plan.steps, out=folder, resume=True, progress=progress,
                                 snapshot_steps=plan.snapshot_steps()))
    return {"checkpoint": str(folder)}


def _set_aside_if_stale(name: str, plan: CheckpointPlan, folder: Path) -> None:
    """Rename a default checkpoint pretrained with another recipe than today's preset (a preset
    changed since), so that the run pretrains the current one; the old one is kept beside it.
    A run killed before its end counts too: resumed, it would go on with its own recorded recipe."""
    record = finished_record(folder)
    if record is None and (folder / STATE_FILE).is_file():
        record = read_record(folder)
    if record is None or not isinstance(record.get("config"), dict):
        return
    spec = pretrain_spec(name)
    current = config_dict(spec.config(plan.preset))
    recorded = config_dict(spec.recorded_config(record["config"], str(folder)))
    changed = sorted(k for k in current if current[k] != recorded.get(k))
    if not changed:
        return
    n = 1
    while folder.with_name(f"{folder.name}.previous-{n}").exists():
        n += 1
    aside = folder.with_name(f"{folder.name}.previous-{n}")
    folder.rename(aside)
    print(f"{name}: {folder} was pretrained with another {plan.preset} recipe (now: "
          f"{', '.join(f'{k}={current[k]}' for k in changed)}); kept as {aside.name}, pretraining the current one",
          flush=True)


def pretrain_spec(name: str) -> Any:
    """The `SPEC` (an `upstreams._ssl.SSLSpec`) of an upstream melbench pretrains.

    Args:
        name: upstream name.

    Returns:
        The spec.

    Raises:
        MelbenchError: the module defines no SPEC.
    """
    from benchmark.registry import load_module

    spec = getattr(load_module(name), "SPEC", None)
    if spec is None:
        raise MelbenchError(f"upstream {name!r} is not pretrained by melbench (its module defines no SPEC)")
    return spec


def pretrain(opts: PretrainOptions) -> PretrainResult:
    """Pretrain an upstream (or resume), writing checkpoints to `opts.out`.

    Args:
        opts: the request.

    Returns:
        The result (on every rank; only rank 0 writes files).

    Raises:
        MelbenchError: unknown upstream/preset/corpus, bad overrides, an existing run without
            `--resume`, or `--resume` with nothing to resume.
    """
    spec = pretrain_spec(opts.upstream)
    rank, world, device = _distributed(opts.device)
    corpus_name, files = resolve_corpus(opts.corpus, opts.quick)
    out = Path(opts.out) if opts.out else checkpoint_dir(spec.name, corpus_name, opts.preset)
    resuming = opts.resume and (out / STATE_FILE).is_file()
    if resuming:
        record = read_record(out)
        preset = record["preset"]
        config = spec.recorded_config(record["config"], str(out / STATE_FILE))
        if opts.overrides and spec.recorded_config({**record["config"], **opts.overrides}, "--set") != config:
            raise MelbenchError(f"{out}: --set {opts.overrides} differs from the run being resumed")
    else:
        if (out / STATE_FILE).is_file():
            raise MelbenchError(f"{out}: a pretraining run exists; pass --resume or another --out")
        preset = opts.preset
        config = spec.config(preset, opts.overrides)
    total = opts.steps if opts.steps is not None else config.max_steps
    if total < 1:
        raise MelbenchError(f"--steps {total}: expected at least 1")

    # Scatter-add backward passes (gathers with repeated indices) otherwise use racing atomics on
    # CPU, which would make a resumed run differ from an uninterrupted one in the last bits.
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = load_mel_corpus(files, config.n_mels, config.train_seed, progress=opts.progress and rank == 0)
    if rank == 0:
        for problem in data.skipped:
            print(f"  skipped: {problem}", flush=True)
    torch.manual_seed(config.train_seed)  # same initial weights on every rank
    model = spec.model_cls(config)
    model.mel_mean.copy_(data.mean)
    model.mel_std.copy_(data.std)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[list[float]] = []
    step = 0
    saved_step: int | None = None  # the last step written to `out`, named if the loss goes NaN
    earlier_s = 0.0  # pretraining wall time of the attempts before a resume
    if resuming:
        record = load_checkpoint(out, model, optimizer)
        step, history = record["step"], record["val_loss"]
        earlier_s = float(record.get("pretrain_s", 0.0))
        saved_step = step
    train_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    model.train()

    def diverged(what: str, value: float) -> MelbenchError:
        last = f"the last good checkpoint is {out} at step {saved_step}" if saved_step is not None \
            else "no checkpoint was saved before it"
        return MelbenchError(f"{spec.name}: {what} became {value} at step {step}; stopped, {last}; "
                             "try a lower --set lr=...")

    def checkpoint() -> None:
        nonlocal saved_step
        if rank == 0:
            # weights are saved only if they give a finite held-out loss: never a garbage checkpoint
            val = history[-1][1] if history and history[-1][0] == step else validation_loss(model, data, config, device)
            if not math.isfinite(val):
                raise diverged("validation loss", val)
            record = config_record(spec, config, preset, corpus_name, step)
            facts = {"val_loss": history, "total_steps": total, "skipped_files": data.skipped,
                     "corpus_train_hours": round(data.train_s / 3600, 3), "params": count_parameters(model),
                     "pretrain_s": round(earlier_s + time.monotonic() - started, 1), "device": str(device)}
            save_checkpoint(out, model, optimizer, {**record, **facts})
        saved_step = step

    def snapshot() -> None:
        if rank == 0 and step in opts.snapshot_steps:
            if not history or history[-1][0] != step:
                history.append([step, validation_loss(model, data, config, device)])
            record = config_record(spec, config, preset, corpus_name, step)
            save_snapshot(snapshot_dir(out, step), model, {**record, "val_loss": [history[-1]], "total_steps": total,
                                                           "corpus_train_hours": round(data.train_s / 3600, 3)})

    if not history and rank == 0:
        history.append([0, validation_loss(model, data, config, device)])
    if step == 0:
        snapshot()
    crop_frames = round(config.crop_s * data.frame_rate)
    audio_per_step_s = config.batch_size * crop_frames / data.frame_rate * world
    started = time.monotonic()
    first_step = step
    bar = tqdm(total=total, initial=step, desc=f"pretrain {spec.name}", disable=not opts.progress or rank != 0)
    while step < total:
        if opts.stop_after is not None and step >= opts.stop_after:
            break
        if opts.minutes is not None and time.monotonic() - started > 60 * opts.minutes:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.lr, config.warmup_steps, total)
        generator = torch.Generator().manual_seed(seed_for(config.train_seed, step, rank, "data"))
        mel, frames = sample_batch(data.train, config.batch_size, crop_frames, generator)
        torch.manual_seed(seed_for(config.train_seed, step, rank, "model"))
        with _autocast(device):
            loss, stats = train_model(mel.to(device), frames.to(device), step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):  # stop before a checkpoint can store the damaged weights
            raise diverged("loss", loss_value)
        elapsed = time.monotonic() - started
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", audio_s_per_s=f"{(step - first_step) * audio_per_step_s / elapsed:.1f}")
        if rank == 0 and (step % opts.val_every == 0 or step == total or step in opts.snapshot_steps):
            history.append([step, validation_loss(model, data, config, device)])
            bar.write(f"step {step}: validation loss {history[-1][1]:.4f}")
        snapshot()
        if step % opts.checkpoint_every == 0:
            checkpoint()
    bar.close()
    elapsed = time.monotonic() - started
    checkpoint()
    if world > 1:
        torch.distributed.barrier()
    speed = (step - first_step) * audio_per_step_s / elapsed if step > first_step else 0.0
    return PretrainResult(out, step, [(int(s), float(v)) for s, v in history], speed, count_parameters(model))
