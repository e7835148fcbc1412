"""Input alterations of the masked-reconstruction family (Mockingjay, Audio ALBERT, TERA).

All vectorised over batch and frames; randomness comes from torch's global generator, which
the training loop reseeds from (seed, step, rank) so a resumed run repeats the same masks.
"""

import torch


def span_mask(frames: torch.Tensor, n_frames: int, proportion: float, span: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose `proportion` of each clip's valid frames in non-overlapping spans of `span` frames.

    The frames are cut into a grid of `span`-frame chunks with a random offset per clip; only
    chunks fully inside the clip are candidates, and `max(1, round(proportion * frames / span))`
    of them are drawn without replacement (none if the clip is shorter than one span).

    Args:
        frames: `(B,)` valid frame counts.
        n_frames: padded length T.
        proportion: fraction of frames to select (Mockingjay: 0.15).
        span: consecutive frames per span (Mockingjay: 7).

    Returns:
        `(B, T)` bool selected frames and `(B, T)` long chunk id of every frame, so callers can
        make one decision per span.
    """
    device = frames.device
    batch = frames.shape[0]
    offset = torch.randint(0, span, (batch, 1), device=device)  # (B, 1)
    chunk = (torch.arange(n_frames, device=device)[None, :] + offset) // span  # (B, T): chunk c starts at c*span - offset
    n_chunks = (n_frames + span - 1) // span + 1
    ids = torch.arange(n_chunks, device=device)[None, :]  # (1, C)
    first_full = (offset > 0).long()  # chunk 0 is cut by the offset unless offset == 0
    last_full = (frames[:, None] + offset) // span - 1  # (B, 1)
    candidate = (ids >= first_full) & (ids <= last_full)  # (B, C)
    scores = torch.where(candidate, torch.rand(batch, n_chunks, device=device), torch.full_like(ids, 2, dtype=torch.float))
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, C): 0 for the lowest score
    wanted = torch.clamp(torch.round(proportion * frames.float() / span), min=1).long()[:, None]  # (B, 1)
    chosen = candidate & (rank < wanted)  # (B, C)
    return chosen.gather(1, chunk), chunk


def time_alter(
    x: torch.Tensor, frames: torch.Tensor, proportion: float, span: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mockingjay time alteration: of the selected spans 80% zeroed, 10% random frames, 10% kept.

    Args:
        x: `(B, T, F)` normalised log-Mel frames.
        frames: `(B,)` valid frame counts.
        proportion, span: as `span_mask`.

    Returns:
        The altered input `(B, T, F)` and the `(B, T)` bool frames to reconstruct (all selected
        frames, whichever of the three treatments they got).
    """
    batch, n_frames, _ = x.shape
    selected, chunk = span_mask(frames, n_frames, proportion, span)
    dice = torch.rand(batch, int(chunk.max()) + 1, device=x.device).gather(1, chunk)  # (B, T): one draw per span
    zero = selected & (dice < 0.8)
    swap = selected & (dice >= 0.8) & (dice < 0.9)
    # Random frames come from anywhere in the same clip's valid part.
    source = (torch.rand(batch, n_frames, device=x.device) * frames[:, None]).long()  # (B, T)
    random_frames = x.gather(1, source[..., None].expand_as(x))  # (B, T, F)
    out = torch.where(swap[..., None], random_frames, x)
    out = out.masked_fill(zero[..., None], 0.0)
    return out, selected


def frequency_alter(x: torch.Tensor, max_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TERA frequency alteration: zero one band of 0..`max_fraction` of the bins per clip.

    Args:
        x: `(B, T, F)` normalised frames.
        max_fraction: widest band as a fraction of F (TERA: 0.2).

    Returns:
        The altered input and the `(B, F)` bool zeroed bins.
    """
    batch, _, n_bins = x.shape
    max_width = int(max_fraction * n_bins)
    width = torch.randint(0, max_width + 1, (batch, 1), device=x.device)  # (B, 1)
    start = (torch.rand(batch, 1, device=x.device) * (n_bins - width + 1)).long()  # (B, 1)
    bins = torch.arange(n_bins, device=x.device)[None, :]  # (1, F)
    band = (bins >= start) & (bins < start + width)  # (B, F)
    return x.masked_fill(band[:, None, :], 0.0), band


def magnitude_alter(x: torch.Tensor, prob: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """TERA magnitude alteration: with probability `prob` per clip add Gaussian noise of `std`.

    Args:
        x: `(B, T, F)` normalised frames.
        prob: chance that a clip gets noise.
        std: noise standard deviation (in normalised units).

    Returns:
        The altered input and the `(B,)` bool clips that got noise.
    """
    noisy = torch.rand(x.shape[0], device=x.device) < prob  # (B,)
    noise = torch.randn_like(x) * std * noisy[:, None, None]
    return x + noise, noisy
