"""Span masking and negative sampling statistics."""

import torch

from hourglass_w2v2.models.masking import (
    compute_channel_mask,
    compute_span_mask,
    sample_negative_indices,
)


def test_masked_fraction_matches_wav2vec2():
    # p=0.65, span 10 covers ~49% of frames (the wav2vec 2.0 paper's figure); with 500 frames
    # and no overlap correction the expected coverage is 1 - (1 - 10/490)^32.5 ~ 48.7%
    gen = torch.Generator().manual_seed(0)
    frac = torch.stack(
        [
            compute_span_mask((8, 500), 0.65, 10, generator=gen, same_count=False).float().mean()
            for _ in range(50)
        ]
    ).mean()
    assert 0.46 < frac < 0.51, frac


def test_same_count_padding_aware_and_min_masks():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([300, 120, 40, 25])
    pad = torch.arange(300)[None] >= lengths[:, None]
    for _ in range(20):
        mask = compute_span_mask((4, 300), 0.65, 10, pad, min_masks=2, generator=gen)
        counts = mask.sum(1)
        assert (counts == counts[0]).all() and counts[0] >= 2
        assert not (mask & pad).any()
    # a row with no masking chance still gets min_masks spans
    mask = compute_span_mask((1, 100), 0.001, 5, min_masks=2, generator=gen, same_count=False)
    assert 6 <= mask.sum() <= 10


def test_span_starts_are_uniform():
    gen = torch.Generator().manual_seed(0)
    mask = compute_span_mask((20000, 30), 0.2, 1, generator=gen, same_count=False)
    # span length 1: every start in [0, 29) equally likely, the last frame never masked
    per_frame = mask.float().mean(0)
    assert per_frame[-1] == 0
    assert (per_frame[:-1] - per_frame[:-1].mean()).abs().max() < 0.02


def test_channel_mask_fraction():
    gen = torch.Generator().manual_seed(0)
    mask = compute_channel_mask(2000, 256, 0.1, 8, generator=gen)
    assert mask.shape == (2000, 256)
    assert 0.07 < mask.float().mean() < 0.11


def test_negatives_never_the_positive_and_uniform():
    gen = torch.Generator().manual_seed(0)
    idx = sample_negative_indices(64, 20, 100, generator=gen)
    assert idx.shape == (64, 20, 100)
    positive = torch.arange(20)[None, :, None]
    assert not (idx == positive).any()
    assert idx.min() == 0 and idx.max() == 19
    # for target 0, values 1..19 each ~1/19 of draws
    counts = torch.bincount(idx[:, 0].flatten(), minlength=20).float()
    assert counts[0] == 0
    expected = 64 * 100 / 19
    assert ((counts[1:] - expected).abs() / expected).max() < 0.15


def test_negatives_never_padding_in_frame_terms():
    # negatives index masked frames, and masked frames are never padding
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([80, 33])
    pad = torch.arange(80)[None] >= lengths[:, None]
    mask = compute_span_mask((2, 80), 0.65, 10, pad, min_masks=2, generator=gen)
    frames = torch.stack([row.nonzero().flatten() for row in mask])  # (B, M) frame positions
    neg = sample_negative_indices(2, frames.shape[1], 50, generator=gen)
    neg_frames = torch.gather(frames, 1, neg.view(2, -1)).view_as(neg)
    assert (neg_frames < lengths[:, None, None]).all()
    assert not (neg_frames == frames[:, :, None]).any()
