"""wav2vec-2.0-style contrastive model (Baevski et al. 2020) on log-Mel frames, pretrained by melbench.

Input: log-Mel frames, not the raw waveform. The paper's convolutional feature encoder
(20 ms hop) is replaced by a per-frame Linear + LayerNorm on the corpus-normalised 100 Hz
log-Mel frames, so features align with the `mel` baseline frame for frame. Spans of frames
are masked (start probability 0.065, span 10) and replaced by a learned vector; a post-LN
transformer (sinusoidal positions instead of the paper's convolutional ones) sees the masked
sequence; a Gumbel-softmax product quantiser (G groups x V entries) turns the unmasked local
features into targets; the loss is InfoNCE between the context at each masked frame and its
target against K distractors drawn from other masked frames of the same clip (cosine
similarity / 0.1), plus 0.1 x the codebook diversity loss. The `tiny` and `small` presets draw
the distractors from the masked frames of the whole batch instead: from its own clip the small
model collapses to chance (docs/ssl_upstreams.md).
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from upstreams._dropout import Dropout
from upstreams._ssl import CHECK_OPTIONS, SSLSpec, TrainFields, init_mel_stats
from upstreams._transformer import Encoder, sinusoidal_positions, valid_mask


@dataclass(frozen=True)
class Wav2vecConfig(TrainFields):
    """Defaults: wav2vec 2.0 BASE context network (12 x 768, 8 heads, FFN 3072) and loss settings."""

    hidden: int = 768
    heads: int = 8
    ffn: int = 3072
    layers: int = 12
    dropout: float = 0.1
    lr: float = 5e-4
    mask_prob: float = 0.065  # chance that a frame starts a masked span
    mask_span: int = 10
    groups: int = 2  # G codebooks
    entries: int = 320  # V entries each
    final_dim: int = 256  # space where context and targets are compared
    negatives: int = 100  # K distractors per masked frame
    distractors: Literal["clip", "batch"] = "clip"  # where they come from: "clip" (the paper: its own clip) or "batch"
    logit_temp: float = 0.1
    diversity_weight: float = 0.1
    gumbel_start: float = 2.0
    gumbel_end: float = 0.5
    gumbel_decay: float = 0.999995  # per step


def span_starts_mask(frames: torch.Tensor, n_frames: int, prob: float, span: int) -> torch.Tensor:
    """`(B, T)` bool: spans of `span` frames from starts drawn with `prob`; at least one span per clip."""
    device = frames.device
    keep = valid_mask(frames, n_frames)  # (B, T)
    starts = (torch.rand(frames.shape[0], n_frames, device=device) < prob) & keep  # (B, T)
    # A clip that drew no start gets one at a random place, so every clip has targets.
    forced = (torch.rand(frames.shape[0], device=device) * (frames - span + 1).clamp(min=1)).long()  # (B,)
    starts[torch.arange(frames.shape[0], device=device), forced] |= ~starts.any(dim=1)
    # Frame t is masked when a span started at t-span+1..t: a running max over a causal window.
    padded = F.pad(starts.float()[:, None, :], (span - 1, 0))  # (B, 1, T + span - 1)
    return (F.max_pool1d(padded, span, stride=1)[:, 0] > 0) & keep  # (B, T)


class Wav2vec(nn.Module):
    """Local features, masked context transformer, Gumbel quantiser, InfoNCE + diversity.

    Args:
        config: a `Wav2vecConfig`.
    """

    def __init__(self, config: Wav2vecConfig):
        super().__init__()
        self.config = config
        init_mel_stats(self, config.n_mels)
        self.local = nn.Sequential(nn.Linear(config.n_mels, config.hidden), nn.LayerNorm(config.hidden))
        self.mask_emb = nn.Parameter(torch.rand(config.hidden))
        self.drop = Dropout(config.dropout)
        self.encoder = Encoder(config.hidden, config.heads, config.ffn, config.layers, config.dropout)
        self.code_logits = nn.Linear(config.hidden, config.groups * config.entries)
        self.codebook = nn.Parameter(torch.rand(config.groups, config.entries, config.final_dim // config.groups))
        self.target_proj = nn.Linear(config.final_dim // config.groups * config.groups, config.final_dim)
        self.context_proj = nn.Linear(config.hidden, config.final_dim)
        self.feature_dim = config.hidden
        self.num_hidden = config.layers + 1

    def _context(self, z: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        """Every transformer layer's output, `(B, T, D)` each, for local features `z` (positions added here)."""
        h = self.drop(z + sinusoidal_positions(z.shape[1], z.shape[2], z.device)[None])
        return self.encoder(h, valid_mask(frames, z.shape[1]))

    def hidden_states(self, mel: torch.Tensor, frames: torch.Tensor) -> list[torch.Tensor]:
        """Local features then every transformer layer (no masking), each `(B, T, hidden)`.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames (normalised here with corpus statistics).
            frames: `(B,)` valid frame counts.
        """
        z = self.local((mel - self.mel_mean) / self.mel_std)  # (B, T, D)
        return [z, *self._context(z, frames)]

    def _quantise(self, z: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets `(N, final_dim)` and soft code probabilities `(N, G, V)` for local features `(N, D)`."""
        cfg = self.config
        logits = self.code_logits(z).view(-1, cfg.groups, cfg.entries)  # (N, G, V)
        if self.training:
            tau = max(cfg.gumbel_end, cfg.gumbel_start * cfg.gumbel_decay**step)
            onehot = F.gumbel_softmax(logits.float(), tau=tau, hard=True, dim=-1)  # straight-through
        else:
            onehot = F.one_hot(logits.argmax(-1), cfg.entries).float()
        codes = torch.einsum("ngv,gvc->ngc", onehot.to(self.codebook.dtype), self.codebook)  # (N, G, C)
        return self.target_proj(codes.flatten(1)), logits.float().softmax(-1)

    def _distractors(self, mask: torch.Tensor, b_idx: torch.Tensor, t_idx: torch.Tensor) -> torch.Tensor:
        """`(N, K)` indices into the N masked frames, K distractors each, drawn with replacement
        from the other masked frames of the same clip ("clip") or of the whole batch ("batch")."""
        cfg = self.config
        n = len(b_idx)
        if cfg.distractors == "batch":
            count = torch.full((n,), n, device=mask.device)  # (N,)
            rank = torch.arange(n, device=mask.device)  # (N,): its own index
            first = torch.zeros(n, dtype=torch.long, device=mask.device)  # (N,)
        else:
            per_clip = mask.sum(1)  # (B,): masked frames of each clip, contiguous in `b_idx` order
            count = per_clip[b_idx]  # (N,)
            rank = (mask.cumsum(1) - 1)[b_idx, t_idx]  # (N,): index among its clip's masked frames
            first = (per_clip.cumsum(0) - per_clip)[b_idx]  # (N,): its clip's first masked frame
        pick = (torch.rand(n, cfg.negatives, device=mask.device) * (count - 1).clamp(min=1)[:, None]).long()
        pick = torch.minimum(pick + (pick >= rank[:, None]).long(), (count - 1)[:, None])  # skip itself
        return first[:, None] + pick  # (N, K)

    def forward(self, mel: torch.Tensor, frames: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict]:
        """InfoNCE over masked frames plus the weighted diversity loss.

        Args:
            mel: `(B, T, n_mels)` raw log-Mel frames.
            frames: `(B,)` valid frame counts.
            step: training step (anneals the Gumbel temperature).

        Returns:
            The loss and `{"contrastive", "chance", "diversity", "perplexity"}` (`chance`: the
            contrastive loss of uninformative logits, for the distractors this batch kept).
        """
        cfg = self.config
        n_frames = mel.shape[1]
        z = self.local((mel - self.mel_mean) / self.mel_std)  # (B, T, D)
        mask = span_starts_mask(frames, n_frames, cfg.mask_prob, cfg.mask_span)  # (B, T)
        context = self._context(torch.where(mask[..., None], self.mask_emb.to(z.dtype), z), frames)[-1]

        b_idx, t_idx = mask.nonzero(as_tuple=True)  # N masked frames
        targets, probs = self._quantise(z[b_idx, t_idx], step)  # (N, final), (N, G, V)

        negatives = targets[self._distractors(mask, b_idx, t_idx)]  # (N, K, final)
        candidates = torch.cat([targets[:, None], negatives], dim=1)  # (N, 1 + K, final)
        pred = self.context_proj(context[b_idx, t_idx])  # (N, final)
        logits = F.cosine_similarity(pred[:, None].float(), candidates.float(), dim=-1) / cfg.logit_temp  # (N, 1 + K)
        # A distractor equal to the target (itself, or the same code) is no distractor.
        same = (negatives == targets[:, None]).all(-1)  # (N, K)
        logits[:, 1:] = logits[:, 1:].masked_fill(same, float("-inf"))
        contrastive = F.cross_entropy(logits, torch.zeros(len(b_idx), dtype=torch.long, device=z.device))
        # The loss of logits that say nothing (all candidates alike): log(1 + distractors left).
        # Below it the context tells its target apart; at it the model has collapsed.
        chance = torch.log1p((~same).sum(1).float()).mean()

        mean_probs = probs.mean(0)  # (G, V): code usage over the batch
        perplexity = torch.exp(-(mean_probs * torch.log(mean_probs + 1e-7)).sum(-1)).sum()
        n_codes = cfg.groups * cfg.entries
        diversity = (n_codes - perplexity) / n_codes
        loss = contrastive + cfg.diversity_weight * diversity
        stats = {"contrastive": contrastive, "chance": chance, "diversity": diversity, "perplexity": perplexity}
        return loss, {k: float(v.detach()) for k, v in stats.items()}


TINY = {"batch_size": 4, "crop_s": 1.0, "warmup_steps": 5, "lr": 2e-3, "dropout": 0.0, "gumbel_decay": 0.99}
SPEC = SSLSpec(
    name="wav2vec",
    config_cls=Wav2vecConfig,
    presets={
        "tiny": Wav2vecConfig(hidden=32, heads=2, ffn=64, layers=2, entries=16, final_dim=32, negatives=10,
                               distractors="batch", **TINY),
        "small": Wav2vecConfig(
            hidden=192, heads=3, ffn=768, layers=4, entries=64, final_dim=128, negatives=50,
            batch_size=8, crop_s=3.0, warmup_steps=200, gumbel_decay=0.9995,
            # Distractors from its own clip collapse the small model to chance; from the batch it
            # learns (docs/ssl_upstreams.md, docs/ablations/wav2vec_small.yaml).
            distractors="batch",
        ),
        "base": Wav2vecConfig(),
        "large": Wav2vecConfig(hidden=1024, heads=16, ffn=4096, layers=24, final_dim=768, lr=3e-4),
    },
    model_cls=Wav2vec,
)

# The contract: `load(**options)` (options: `upstreams._ssl.load_ssl`) and `SPEC` (the harness
# pretrains it); the imported CHECK_OPTIONS are what the contract tests load it with.
load = SPEC.load
