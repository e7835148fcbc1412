"""Shared parts of the self-supervised upstreams melbench pretrains itself.

Each SSL upstream module (`mockingjay`, `audio_albert`, `tera`, `apc`, `wav2vec`) defines a
`SPEC = SSLSpec(...)`: its typed config dataclass (model + training fields), its presets
(instances of that dataclass) and its model class. The model is a `torch.nn.Module` with
  * buffers `mel_mean`, `mel_std` `(n_mels,)`: per-bin log-Mel statistics of the pretraining
    corpus, stored in the checkpoint; inputs are normalised with them (never per utterance), so
    a clip's features do not depend on the padding around it;
  * `hidden_states(x, frames) -> list[(B, T, D)]`: input embedding then each layer;
  * `forward(x, frames, step) -> (loss, stats)`: the pretraining objective on a batch, called
    by the shared loop in `benchmark.pretraining.loop` (through DDP when distributed).

Checkpoint folder: `model.safetensors` (weights and statistics, no pickle) and `config.json`
(`upstream`, `preset`, `corpus`, `step`, `config`), by default under
`$MELBENCH_HOME/checkpoints/<upstream>/<corpus>-<preset>/`; without a `checkpoint` option `load`
reads the one `melbench run` pretrains (`benchmark.pretraining.checkpoints.DEFAULT_CHECKPOINT`).
"""

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from benchmark.check import MAX_BATCH_TOLERANCE
from benchmark.config import build_config
from benchmark.errors import MelbenchError
from benchmark.logmel import LogMel, MelConfig
from benchmark.pretraining import checkpoints
from benchmark.pretraining.checkpoints import checkpoint_dir
from benchmark.pretraining.train_state import CONFIG_FILE, MODEL_FILE, count_parameters, read_tensors
from benchmark.upstream import Upstream

# What the contract tests load each SSL upstream with: an explicitly untrained tiny model.
CHECK_OPTIONS = {"random_init": True, "preset": "tiny"}
# `precision` option: float32, or the model's matmuls under bf16 autocast (the log-Mel front-end,
# normalisations and softmax stay float32); features are float32 either way.
PRECISIONS = ("float32", "bf16")


@dataclass(frozen=True)
class TrainFields:
    """Training fields every SSL config inherits (AdamW, warm-up then linear decay, clipping)."""

    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 20000  # schedule length when no --steps is given (e.g. with --minutes)
    grad_clip: float = 1.0
    batch_size: int = 8
    crop_s: float = 3.0  # training segments are random crops of this length
    # extraction feeds the model at most this many seconds of a clip at once: a longer clip goes
    # through it in equal chunks, each on its own (s3prl's `task.sequence_length`, read from and
    # written to s3prl checkpoints); 0: the whole clip (up to `SSLUpstream.max_input_s`)
    extract_window_s: float = 0.0
    n_mels: int = 80
    train_seed: int = 0  # weights, data order and masks are pure functions of (train_seed, step, rank)


@dataclass(frozen=True)
class SSLSpec:
    """What the shared loader and training loop need to know about one SSL upstream."""

    name: str
    config_cls: type
    presets: dict[str, Any]
    model_cls: type

    def load(self, **options: Any) -> "SSLUpstream":
        """The module's `load(**options)`: see `load_ssl` for the options."""
        return load_ssl(self, **options)

    def to_s3prl(self, checkpoint: str | Path) -> dict[str, Any]:
        """The module's `to_s3prl`: a melbench checkpoint as an s3prl checkpoint dict
        (`upstreams._s3prl.to_s3prl`)."""
        from upstreams._s3prl import to_s3prl

        return to_s3prl(load_ssl(self, checkpoint=checkpoint).model, self.name)

    def config(self, preset: str, overrides: dict[str, Any] | None = None) -> Any:
        """The preset's config with type-checked overrides.

        Args:
            preset: a key of `presets`.
            overrides: field values replacing the preset's (unknown keys are rejected).

        Returns:
            A `config_cls` instance.
        """
        if preset not in self.presets:
            raise MelbenchError(f"{self.name}: unknown preset {preset!r}; known: {', '.join(self.presets)}")
        merged = {**dataclasses.asdict(self.presets[preset]), **(overrides or {})}
        config = build_config(self.config_cls, merged, what=f"{self.name} option")
        window_frames(config, f"{self.name} option")  # a bad window stops `pretrain` before it trains
        return config

    def recorded_config(self, fields: dict[str, Any], where: str) -> Any:
        """The config a checkpoint was pretrained with, from the fields its record holds.

        A field added to the config after the checkpoint was written takes the class default,
        which keeps the behaviour of the code that wrote it (not today's preset value).

        Args:
            fields: the record's `config`.
            where: the record's path, for errors.

        Returns:
            A `config_cls` instance.
        """
        return build_config(self.config_cls, fields, what=f"{where} field")


def init_mel_stats(model: torch.nn.Module, n_mels: int) -> None:
    """Register the `mel_mean`/`mel_std` buffers (identity normalisation until pretraining sets them)."""
    model.register_buffer("mel_mean", torch.zeros(n_mels))
    model.register_buffer("mel_std", torch.ones(n_mels))


def read_record_json(path: Path) -> dict[str, Any]:
    """A checkpoint's `config.json`, checked to be an object with a `config` object."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise MelbenchError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise MelbenchError(f"{path}: expected an object with a `config` object")
    return record


def read_checkpoint(spec: SSLSpec, folder: Path) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint folder written by `benchmark.pretraining.loop`.

    Args:
        spec: the upstream the checkpoint must belong to.
        folder: holds `model.safetensors` and `config.json`.

    Returns:
        The config, the state dict and the JSON record.
    """
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise MelbenchError(f"{folder}: not a checkpoint (expected {MODEL_FILE} and {CONFIG_FILE})")
    record = read_record_json(folder / CONFIG_FILE)
    if record.get("upstream") != spec.name:
        raise MelbenchError(f"{folder}: checkpoint of {record.get('upstream')!r}, not {spec.name!r}")
    config = spec.recorded_config(record["config"], str(folder / CONFIG_FILE))
    return config, read_tensors(folder / MODEL_FILE)[0], record


class SSLUpstream(Upstream):
    """A pretrained (or explicitly random) SSL model behind the upstream contract.

    Args:
        model: the spec's model, weights and statistics loaded.
        layer: which hidden state `extract` returns (index into input embedding + layers).
        device: where the model runs.
        frontend: the log-Mel front-end (default melbench's).
        precision: one of `PRECISIONS`.
        sequence_length: as s3prl's `task.sequence_length`: a clip of more frames goes through
            the model in `ceil(frames / sequence_length)` equal chunks (`torch.chunk`), each on
            its own, and their hidden states are joined (0: never cut).
    """

    # Longer clips are extracted in chunks of this length (`extract_chunked`): attention memory
    # grows with the square of the frames, and an hour of audio at once would not fit.
    max_input_s = 60.0

    def __init__(self, model: torch.nn.Module, layer: int, device: str, frontend: torch.nn.Module | None = None,
                 precision: str = "float32", sequence_length: int = 0):
        self.sequence_length = sequence_length
        if precision not in PRECISIONS:
            raise MelbenchError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        if precision == "bf16":  # the contract checker's batch-vs-single tolerance (`benchmark.check`)
            self.batch_tolerance = MAX_BATCH_TOLERANCE
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        # melbench's log-Mel, or the front-end an s3prl checkpoint names (`upstreams._s3prl`)
        self.frontend = (frontend or LogMel(MelConfig(n_mels=int(model.mel_mean.numel())))).to(self.device)
        self.sample_rate = MelConfig().sr_hz  # both front-ends read 16 kHz and give 100 Hz frames
        self.frame_rate = MelConfig().frame_rate
        self.feature_dim = int(model.feature_dim)
        self.num_layers = int(model.num_hidden)
        if not -self.num_layers <= layer < self.num_layers:
            raise MelbenchError(f"layer {layer} out of range for {self.num_layers} hidden states")
        self.layer = layer

    @torch.no_grad()
    def extract(self, wave: torch.Tensor, layers: bool = False) -> torch.Tensor:
        feats, _ = self.extract_batch(wave[None], torch.tensor([wave.shape[-1]]), layers=layers)
        return feats[0]

    @torch.no_grad()
    def extract_batch(
        self, waves: torch.Tensor, lengths: torch.Tensor, layers: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        waves, lengths = waves.to(self.device), lengths.to(self.device)
        if hasattr(self.frontend, "grid_index"):  # s3prl's Kaldi frames, mapped onto melbench's grid
            feats, model_frames = self.frontend(waves, lengths)  # (B, T', F), (B,)
            index = self.frontend.grid_index(lengths, model_frames).to(self.device)  # (B, T)
            hidden = [h.gather(1, index[..., None].expand(-1, -1, h.shape[-1]))  # (B, T', D) -> (B, T, D)
                      for h in self._hidden_states(feats, model_frames)]
            frames = self.frontend.num_frames(lengths)
        else:
            mel = self.frontend(waves)  # (B, T, n_mels)
            frames = self.frontend.num_frames(lengths)  # (B,)
            hidden = self._hidden_states(mel, frames)  # num_layers x (B, T, D)
        valid = (torch.arange(hidden[0].shape[1], device=self.device)[None, :] < frames[:, None])[..., None]  # (B, T, 1)
        if layers:
            out = torch.stack([h * valid for h in hidden], dim=1)  # (B, num_layers, T, D)
        else:
            out = hidden[self.layer] * valid  # (B, T, D)
        return out.float().cpu(), frames.cpu()

    def _hidden_states(self, mel: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        if self.sequence_length and int(frames.max()) > self.sequence_length:
            return self._chunked_hidden_states(mel, frames)
        return self._model_states(mel, frames)

    def _model_states(self, mel: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        # autocast around the model only: the front-end's filterbank product stays float32
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model.hidden_states(mel, frames)

    def _chunked_hidden_states(self, mel: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        """s3prl's cut of long inputs: each clip's frames in `ceil(frames / sequence_length)`
        equal chunks (`torch.chunk`, so a batch's padding never moves a cut), every chunk of the
        batch through the model at once as one padded batch (padding never changes a chunk's
        states), and each clip's chunks joined again."""
        chunks, per_clip = [], []
        for b in range(mel.shape[0]):
            x = mel[b, : int(frames[b])]  # (T_b, F)
            parts = torch.chunk(x, math.ceil(x.shape[0] / self.sequence_length), dim=0)
            chunks += parts
            per_clip.append(len(parts))
        lengths = torch.tensor([len(c) for c in chunks], device=mel.device)
        hidden = self._model_states(pad_sequence(chunks, batch_first=True), lengths)  # layers x (chunks, T', D)
        starts = [sum(per_clip[:b]) for b in range(len(per_clip))]  # each clip's first chunk
        out = []
        for h in hidden:
            rows = [h[i, : int(n)] for i, n in enumerate(lengths)]  # (T_chunk, D) each
            clips = [torch.cat(rows[start : start + n]) for start, n in zip(starts, per_clip)]  # (T_b, D) each
            out.append(pad_sequence(clips, batch_first=True))  # (B, T, D)
        return out


def window_frames(config: TrainFields, where: str) -> int:
    """The extraction window of a config (`extract_window_s`) in log-Mel frames; 0: no cut.

    Args:
        config: an SSL config.
        where: what the config came from, for errors.

    Returns:
        `SSLUpstream`'s `sequence_length`.
    """
    window_s = config.extract_window_s
    frames = round(window_s * MelConfig().frame_rate)
    if window_s < 0 or (window_s > 0 and frames < 1):
        raise MelbenchError(f"{where}: extract_window_s: expected 0 or at least one frame "
                            f"({1 / MelConfig().frame_rate:g} s), got {window_s:g}")
    return frames


def load_ssl(
    spec: SSLSpec,
    checkpoint: str | Path | None = None,
    layer: int = -1,
    preset: str | None = None,
    device: str = "cpu",
    corpus: str | None = None,
    random_init: bool = False,
    seed: int = 0,
    precision: str = "float32",
    **overrides: Any,
) -> SSLUpstream:
    """Load an SSL upstream from a checkpoint (explicit, or the default one for corpus+preset).

    Args:
        spec: the upstream.
        checkpoint: a checkpoint folder, or an s3prl checkpoint file (`upstreams._s3prl`);
            default: the one `melbench run` pretrains (`benchmark.pretraining.checkpoints.DEFAULT_CHECKPOINT`),
            or that of `corpus` and `preset` where they are given.
        layer: hidden state returned by `extract` (0 = input embedding, -1 = last layer).
        preset: preset of the default checkpoint (or of the random model); default the run's.
        device: torch device.
        corpus: corpus of the default checkpoint (e.g. `music`, `mix-quick`); default the run's.
        random_init: build an untrained model (contract tests only; never for benchmarking).
        seed: weight seed of the random model.
        precision: "float32", or "bf16" to run the model's matmuls under bf16 autocast (where
            bf16 is native: 1.36-1.55x faster for the transformer upstreams at base on a CPU with
            AVX512-BF16; features differ from float32's by ~0.3%).
        **overrides: config fields, only with `random_init` (a checkpoint fixes its config).

    Returns:
        The upstream.

    Raises:
        MelbenchError: no checkpoint and no `random_init`, or overrides given with a checkpoint.
    """
    plan = checkpoints.DEFAULT_CHECKPOINT
    preset = preset or plan.preset
    if random_init:
        if checkpoint is not None:
            raise MelbenchError(f"{spec.name}: give either checkpoint or random_init, not both")
        torch.manual_seed(seed)
        config = spec.config(preset, overrides)
        model = spec.model_cls(config)
        upstream = SSLUpstream(model, layer, device, precision=precision,
                               sequence_length=window_frames(config, f"{spec.name} option"))
        upstream.provenance = {"random_init": True, "preset": preset, "params": count_parameters(model)}
        return upstream
    if overrides:
        raise MelbenchError(f"{spec.name}: options {sorted(overrides)} cannot change a checkpoint's config")
    if checkpoint is not None and not Path(checkpoint).exists():
        raise MelbenchError(f"{checkpoint}: no such checkpoint (expected a melbench checkpoint folder or an s3prl "
                            "checkpoint file)")
    if checkpoint is not None and Path(checkpoint).is_file():  # one file: an s3prl checkpoint
        return _load_s3prl(spec, Path(checkpoint), layer, device, precision)
    corpus = corpus or plan.corpus_name
    folder = Path(checkpoint) if checkpoint is not None else checkpoint_dir(spec.name, corpus, preset)
    if checkpoint is None and not (folder / MODEL_FILE).is_file():
        if folder == plan.folder(spec.name):
            how = f"`melbench run --upstreams {spec.name}` pretrains it first ({plan.steps} steps)"
        else:
            how = f"run `melbench pretrain {spec.name} --corpus {corpus.removesuffix('-quick')} --preset {preset}" + \
                  (" --quick`" if corpus.endswith("-quick") else "`")
        raise MelbenchError(f"{spec.name}: no pretrained checkpoint at {folder}; {how}, or pass checkpoint=DIR "
                            "(or random_init=true for an untrained model)")
    config, state, record = read_checkpoint(spec, folder)
    model = spec.model_cls(config)
    model.load_state_dict(state)
    upstream = SSLUpstream(model, layer, device, precision=precision,
                           sequence_length=window_frames(config, str(folder / CONFIG_FILE)))
    upstream.provenance = checkpoint_provenance(record, count_parameters(model))
    return upstream


def _load_s3prl(spec: SSLSpec, path: Path, layer: int, device: str, precision: str) -> "SSLUpstream":
    """An SSL upstream from an s3prl checkpoint file, on s3prl's own front-end."""
    from upstreams._s3prl import from_s3prl

    config, state, frontend = from_s3prl(path, spec)
    model = spec.model_cls(config)
    for name, tensor in model.state_dict().items():
        if name in state and state[name].shape != tensor.shape:
            if name.startswith("head."):  # a head predicting other targets (linear spectra): unused here
                del state[name]
                continue
            raise MelbenchError(f"{path}: weight {name} has shape {tuple(state[name].shape)}, but the checkpoint's "
                                f"config gives {tuple(tensor.shape)}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("head.") for k in missing):  # the head is unused by extraction
        raise MelbenchError(f"{path}: s3prl weights do not fit {spec.name} (missing {missing}, unexpected {unexpected})")
    upstream = SSLUpstream(model, layer, device, frontend, precision, window_frames(config, str(path)))
    upstream.provenance = {"s3prl_checkpoint": str(path), "params": count_parameters(model)}
    return upstream


def checkpoint_provenance(record: dict[str, Any], params: int) -> dict[str, Any]:
    """What a result should say about the pretraining behind a checkpoint.

    Args:
        record: the checkpoint's `config.json`.
        params: the model's parameter count.

    Returns:
        Preset, corpus and its training hours, steps, batch and crop, wall time, device, final
        validation loss (keys missing from older checkpoints are None).
    """
    val_loss = record.get("val_loss") or [[None, None]]
    config = record.get("config", {})
    return {
        "preset": record.get("preset"), "corpus": record.get("corpus"),
        "corpus_train_hours": record.get("corpus_train_hours"), "steps": record.get("step"),
        "batch_size": config.get("batch_size"), "crop_s": config.get("crop_s"), "params": params,
        "pretrain_s": record.get("pretrain_s"), "device": record.get("device"), "final_val_loss": val_loss[-1][1],
    }
