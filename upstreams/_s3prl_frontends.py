"""s3prl's two on-the-fly front-ends, with s3prl's own feature semantics, on melbench's frame grid.

* `KaldiFrontend`: an `audio.kaldi` section (Kaldi `fbank` / `mfcc` from torchaudio's
  `compliance.kaldi`, `delta`, `cmvn`), s3prl's `get_extracter`. Kaldi keeps whole windows
  only, so its frames sit half a window late and `grid_index` shifts them.
* `OnlineFrontend`: an `audio.input` feature list (`feat_type` linear / mel / mfcc, `log`,
  `delta`, `cmvn`, with `win_ms`, `hop_ms`, `n_freq`, `n_mels`, `n_mfcc`, `target_level`),
  s3prl's `OnlinePreprocessor`, the front-end of its published log-Mel Mockingjay / TERA /
  Audio ALBERT checkpoints (e.g. `logMelBase-T-F-M`). Its STFT is centred, like melbench's
  log-Mel, so its frames are melbench's grid as they are.

Both compute one clip at a time (s3prl's own batches pad clips with zeros that change the
features of the shorter ones) and give `(frames, feature_dim)` per clip.
"""

import warnings
from typing import Any

import torch

from benchmark.errors import MelbenchError

SR_HZ = 16000
ONLINE_FEATURES = ("linear", "mel", "mfcc")


def s3prl_frontend(audio: Any, where: str) -> torch.nn.Module:
    """The front-end an s3prl checkpoint's `audio` section names.

    Args:
        audio: the section.
        where: the checkpoint (for messages).

    Returns:
        A `KaldiFrontend` or an `OnlineFrontend`.

    Raises:
        MelbenchError: the section names neither, or a setting melbench cannot reproduce.
    """
    if isinstance(audio, dict) and "kaldi" in audio:
        return KaldiFrontend(audio)
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        return OnlineFrontend(audio, where)
    keys = sorted(audio) if isinstance(audio, dict) else type(audio).__name__
    raise MelbenchError(f"{where}: its front-end (Upstream_Config.audio: {keys}) is neither Kaldi features "
                        "(`kaldi`) nor s3prl's on-the-fly features (`input`)")


def online_audio_config(feat_type: str = "mel", n_mels: int = 80, delta: int = 0, cmvn: bool = True,
                        target_level: float = -25) -> dict[str, Any]:
    """An s3prl `Upstream_Config["audio"]` section of on-the-fly features, by default that of
    s3prl's published log-Mel TERA / Mockingjay configs (`logMelBase-*`: 80 log-Mel bins of a
    25 ms / 10 ms STFT, utterance CMVN, waveforms scaled to -25 dB)."""
    feat = {"feat_type": feat_type, "channel": 0, "log": feat_type != "mfcc", "delta": delta, "cmvn": cmvn}
    return {"target_level": target_level, "win_ms": 25, "hop_ms": 10, "n_freq": 201, "n_mels": n_mels, "n_mfcc": 13,
            "input": feat, "target": {**feat, "channel": 1}}


class _PerClipFrontend(torch.nn.Module):
    """What both front-ends share: clips computed one at a time (`_one`), then zero-padded; the
    subclass sets `hop` and says where its frames sit (`grid_index`)."""

    hop: int

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, max_samples)` waves -> `(B, T', F)` zero-padded features and `(B,)` frame counts."""
        feats = [self._one(w[: int(n)]) for w, n in zip(waves.cpu(), lengths)]
        frames = torch.tensor([len(f) for f in feats])
        return torch.nn.utils.rnn.pad_sequence(feats, batch_first=True).to(waves.device), frames.to(waves.device)

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """melbench's frame count for clips of `lengths` samples: `1 + n // hop`."""
        return 1 + lengths // self.hop


class OnlineFrontend(_PerClipFrontend):
    """s3prl's `OnlinePreprocessor` input features of one checkpoint (see the module docstring).

    Args:
        audio: the checkpoint's `audio` section.
        where: the checkpoint (for messages).
    """

    def __init__(self, audio: dict[str, Any], where: str):
        super().__init__()
        import torchaudio

        feat = audio["input"]
        self.feat_type = feat.get("feat_type")
        if self.feat_type not in ONLINE_FEATURES:
            raise MelbenchError(f"{where}: input feat_type {self.feat_type!r} is not one melbench reads "
                                f"({', '.join(ONLINE_FEATURES)})")
        if int(audio.get("sample_rate", SR_HZ)) != SR_HZ or float(audio.get("hop_ms", 10)) != 10:
            raise MelbenchError(f"{where}: expected 16 kHz audio and a 10 ms hop, got {audio.get('sample_rate', SR_HZ)} "
                                f"Hz and {audio.get('hop_ms')} ms")
        self.win = round(float(audio.get("win_ms", 25)) * SR_HZ / 1000)
        self.hop = round(float(audio.get("hop_ms", 10)) * SR_HZ / 1000)
        n_freq = int(audio.get("n_freq", 201))
        self.n_fft = (n_freq - 1) * 2
        self.log, self.delta, self.cmvn = bool(feat.get("log", False)), int(feat.get("delta", 0)), bool(feat.get("cmvn", False))
        level = audio.get("target_level")
        self.target_level = None if level is None else float(level)  # dB; s3prl scales each waveform to it
        self.eps = 1e-10  # s3prl's, in the log and the normalisation
        self.register_buffer("window", torch.hann_window(self.win))
        window_args = {"n_fft": self.n_fft, "hop_length": self.hop, "win_length": self.win}
        self.melscale = torchaudio.transforms.MelScale(sample_rate=SR_HZ, n_mels=int(audio.get("n_mels", 40)),
                                                       n_stft=n_freq)
        with warnings.catch_warnings():  # s3prl's MFCC keeps torchaudio's 128 Mel bands on 201 bins: some are empty
            warnings.simplefilter("ignore", UserWarning)
            self.mfcc = torchaudio.transforms.MFCC(sample_rate=SR_HZ, n_mfcc=int(audio.get("n_mfcc", 13)),
                                                   log_mels=True, melkwargs=window_args)

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        """`(n,)` samples -> `(1 + n // hop, F)` features."""
        from torchaudio.functional import compute_deltas

        n_frames = 1 + wave.shape[-1] // self.hop
        if self.target_level is not None:
            rms = wave.pow(2).mean().sqrt()
            wave = wave * (10 ** (self.target_level / 20)) / (rms + 1e-10)
        # the centred STFT reflects half a window at each end (it needs that many samples), and
        # the normalisation divides by a std over frames (it needs two): shorter clips get zeros
        wave = torch.nn.functional.pad(wave, (0, max(0, self.n_fft // 2 + 1 - wave.shape[-1])))
        if self.feat_type == "mfcc":
            x = self.mfcc(wave)  # (n_mfcc, T)
        else:
            spec = torch.stft(wave, self.n_fft, self.hop, self.win, self.window, center=True, pad_mode="reflect",
                              normalized=False, onesided=True, return_complex=True)  # (n_freq, T)
            power = spec.abs().pow(2)
            x = power if self.feat_type == "linear" else self.melscale(power)  # (F, T)
        if self.log:
            x = (x + self.eps).log()
        feats = [x]
        for _ in range(self.delta):
            feats.append(compute_deltas(feats[-1]))
        x = torch.cat(feats, dim=0)  # (F * (1 + delta), T)
        if self.cmvn:
            x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps)
        return x.T[:n_frames]  # (T, F')

    def grid_index(self, lengths: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """`(B, T)` index of the frame under each melbench frame: the same frame (centred STFT)."""
        grid = torch.arange(int(self.num_frames(lengths).max()), device=frames.device)[None, :]  # (1, T)
        return torch.minimum(grid, (frames - 1)[:, None])  # (B, T)


def kaldi_audio_config(n_mels: int = 80) -> dict[str, Any]:
    """An s3prl `Upstream_Config["audio"]` section: Kaldi log filterbanks (25 ms window, 10 ms
    shift, no dither), no deltas, per-utterance mean and variance normalisation."""
    fbank = {"frame_length": 25.0, "frame_shift": 10.0, "num_mel_bins": n_mels, "use_log_fbank": True, "dither": 0.0}
    return {"kaldi": {"feat_type": "fbank", "fbank": fbank}, "delta": {"order": 0}, "cmvn": {"use_cmvn": True}}


class KaldiFrontend(_PerClipFrontend):
    """s3prl's on-the-fly Kaldi features, from a checkpoint's `audio` section: torchaudio's
    Kaldi `fbank` (or `mfcc`), deltas, then per-utterance mean and variance normalisation.

    Kaldi frames keep only whole windows, so clip b gives `1 + (n_b - win) // hop` frames,
    frame i centred at `i * hop + win / 2`; `grid_index` maps them onto melbench's centred grid.
    """

    def __init__(self, audio: dict[str, Any]):
        super().__init__()
        kaldi = audio["kaldi"]
        self.feat_type = kaldi.get("feat_type", "fbank")
        if self.feat_type not in ("fbank", "mfcc"):
            raise MelbenchError(f"s3prl front-end: feat_type {self.feat_type!r} is not fbank or mfcc")
        self.kwargs = dict(kaldi.get(self.feat_type, {}))
        delta = dict(audio.get("delta", {}))
        self.delta_order = int(delta.pop("order", 2))
        self.delta_kwargs = delta  # torchaudio's ComputeDeltas options (`win_length`, `mode`), as s3prl passes them
        self.cmvn = bool(audio.get("cmvn", {}).get("use_cmvn", False))
        self.win = round(self.kwargs.get("frame_length", 25.0) * 16)  # samples at 16 kHz
        self.hop = round(self.kwargs.get("frame_shift", 10.0) * 16)

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        import torchaudio

        # two windows at least: the normalisation divides by the std over frames
        wave = torch.nn.functional.pad(wave, (0, max(0, self.win + self.hop - wave.shape[-1])))
        extract = getattr(torchaudio.compliance.kaldi, self.feat_type)
        x = extract(wave[None], sample_frequency=16000, **self.kwargs)  # (T, F)
        feats = [x]
        for _ in range(self.delta_order):  # deltas of deltas, over time
            feats.append(torchaudio.functional.compute_deltas(feats[-1].T[None], **self.delta_kwargs)[0].T)
        x = torch.cat(feats, dim=-1)
        if self.cmvn:
            x = (x - x.mean(0, keepdim=True)) / (1e-10 + x.std(0, keepdim=True))
        return x

    def grid_index(self, lengths: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """`(B, T)` index of the Kaldi frame under each melbench frame (centred, `1 + n // hop`):
        Kaldi frame i lands on melbench frame i + 1 (centres 2.5 ms apart with 25 / 10 ms
        frames); the edges repeat."""
        grid = torch.arange(int(self.num_frames(lengths).max()), device=frames.device)[None, :] - 1  # (1, T)
        return torch.minimum(grid.clamp(min=0), (frames - 1)[:, None])  # (B, T)
