"""Span masking and distractor sampling for wav2vec 2.0, vectorised over the batch.

``compute_span_mask`` follows fairseq's ``compute_mask_indices`` ("static" lengths): per
utterance ``floor(p * length / span + U(0,1))`` (at least ``min_masks``) distinct span starts
drawn uniformly from ``[0, length - span)``, spans cropped at the utterance end, padding never
masked. With ``same_count`` (fairseq's ``require_same_masks``) every row is then cut down to the
smallest row's masked count by unmasking random frames, so masked frames reshape to
``(B, M, C)``. ``mask_dropout`` then unmasks ``round(share * count)`` random masked frames of
each row (fairseq's ``mask_dropout``; rows with the same count keep the same count).
"""

from __future__ import annotations

import torch
from torch import Tensor

# Random, data-dependent index work (span counts vary per utterance): torch.compile gains nothing
# here and cannot trace torch.rand over symbolic sizes, so these always run eagerly.
_eager = torch.compiler.disable


@_eager
def compute_span_mask(
    shape: tuple[int, int],
    mask_prob: float,
    mask_length: int,
    padding_mask: Tensor | None = None,
    min_masks: int = 0,
    same_count: bool = True,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    mask_dropout: float = 0.0,
) -> Tensor:
    """Return a (B, T) bool mask, True = masked; see the module docstring for the sampling."""
    if not 0.0 <= mask_dropout < 1.0:
        raise ValueError(f"mask_dropout must be in [0, 1), got {mask_dropout}")
    batch, length = shape
    if padding_mask is not None:
        device = padding_mask.device
        lengths = (~padding_mask).sum(-1)
    else:
        lengths = torch.full((batch,), length, dtype=torch.long, device=device)
    if mask_prob <= 0 or length == 0:
        return torch.zeros(batch, length, dtype=torch.bool, device=device)

    def rand(*size: int) -> Tensor:
        return torch.rand(*size, device=device, generator=generator)

    num_starts = (lengths - mask_length).clamp(min=1)  # candidate start positions per row
    num_spans = torch.floor(mask_prob * lengths / mask_length + rand(batch)).long()
    num_spans = num_spans.clamp(min=min_masks)
    num_spans = torch.minimum(num_spans, num_starts).clamp(min=0)
    max_spans = int(num_spans.max())
    if max_spans == 0:
        return torch.zeros(batch, length, dtype=torch.bool, device=device)

    # distinct starts: the top-k of random scores over each row's candidate positions
    positions = torch.arange(length, device=device)
    scores = rand(batch, length).masked_fill(positions[None] >= num_starts[:, None], -1.0)
    starts = scores.topk(max_spans, dim=1).indices  # (B, max_spans)
    frames = starts[:, :, None] + torch.arange(mask_length, device=device)  # (B, S, L)
    keep = torch.arange(max_spans, device=device)[None, :, None] < num_spans[:, None, None]
    keep = keep & (frames < lengths[:, None, None])
    frames = torch.where(keep, frames, torch.full_like(frames, length))  # dump column
    mask = torch.zeros(batch, length + 1, dtype=torch.bool, device=device)
    mask.scatter_(1, frames.view(batch, -1), True)
    mask = mask[:, :length]

    if same_count and batch > 1:
        target = int(mask.sum(1).min())
        # keep a random subset of `target` masked frames per row
        scores = rand(batch, length).masked_fill(~mask, -1.0)
        kept = scores.topk(target, dim=1).indices
        mask = torch.zeros_like(mask).scatter_(1, kept, True)
    if mask_dropout > 0:
        # round half to even, as fairseq's np.rint
        holes = torch.round(mask.sum(1) * mask_dropout).long()
        # rank each row's masked frames in a random order; the first `holes` ranks unmask
        scores = rand(batch, length).masked_fill(~mask, 2.0)
        ranks = scores.argsort(1).argsort(1)
        mask = mask & (ranks >= holes[:, None])
    return mask


@_eager
def compute_channel_mask(
    batch: int,
    channels: int,
    mask_prob: float,
    mask_length: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    same_count: bool = True,
) -> Tensor:
    """(B, C) bool mask of channel spans (fine-tuning's SpecAugment-like channel masking).

    ``same_count`` as for time masks; fairseq's channel masks always have it (the default of
    its ``compute_mask_indices``).
    """
    return compute_span_mask(
        (batch, channels),
        mask_prob,
        mask_length,
        None,
        min_masks=0,
        same_count=same_count,
        device=device,
        generator=generator,
    )


@_eager
def sample_negative_indices(
    batch: int,
    num_targets: int,
    num_negatives: int,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, M, N) indices into each utterance's M targets, uniform over the M-1 others.

    Drawing from ``[0, M-1)`` and shifting values ``>= i`` up by one excludes the positive
    ``i`` without rejection sampling. Targets are masked frames, which are never padding.
    """
    if num_targets < 2:
        raise ValueError(
            f"need at least 2 masked frames per utterance to sample negatives, got {num_targets}"
        )
    idx = torch.randint(
        0, num_targets - 1, (batch, num_targets, num_negatives), device=device, generator=generator
    )
    positive = torch.arange(num_targets, device=device)[None, :, None]
    return idx + (idx >= positive).long()
