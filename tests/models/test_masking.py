"""Span masking and negative sampling statistics."""

import pytest
import torch

from hourglass_w2v2.models import ModelConfig, build_model, wav2vec2
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
    mask = compute_channel_mask(2000, 256, 0.1, 8, generator=gen, same_count=False)
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


def test_mask_dropout_unmasks_that_share_of_each_rows_masked_frames():
    # fairseq: num_holes = rint(masked * mask_dropout) per row, after the same-count step
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([400, 300, 200])
    pad = torch.arange(400)[None] >= lengths[:, None]
    full = compute_span_mask((3, 400), 0.65, 10, pad, min_masks=2, generator=gen)
    gen = torch.Generator().manual_seed(0)
    holed = compute_span_mask(
        (3, 400), 0.65, 10, pad, min_masks=2, mask_dropout=0.25, generator=gen
    )
    kept = full.sum(1)
    assert (holed.sum(1) == kept - torch.round(kept * 0.25).long()).all()
    assert not (holed & ~full).any()  # holes only unmask, never mask new frames
    assert (holed.sum(1) == holed.sum(1)[0]).all()  # rows keep the same count
    # without same_count each row loses its own share of its own count
    gen = torch.Generator().manual_seed(1)
    full = compute_span_mask((3, 400), 0.65, 10, pad, same_count=False, generator=gen)
    gen = torch.Generator().manual_seed(1)
    holed = compute_span_mask(
        (3, 400), 0.65, 10, pad, same_count=False, mask_dropout=0.5, generator=gen
    )
    kept = full.sum(1)
    assert len(set(kept.tolist())) > 1
    assert (holed.sum(1) == kept - torch.round(kept * 0.5).long()).all()


def test_channel_masks_have_the_same_count_per_row_unless_asked_otherwise():
    # fairseq's compute_mask_indices defaults to require_same_masks=True for channels too
    gen = torch.Generator().manual_seed(0)
    same = compute_channel_mask(16, 768, 0.5, 64, generator=gen)
    assert (same.sum(1) == same.sum(1)[0]).all() and same.sum(1)[0] > 0
    free = compute_channel_mask(16, 768, 0.5, 64, generator=gen, same_count=False)
    assert len(set(free.sum(1).tolist())) > 1


def _ctc_time_masks(monkeypatch, **overrides) -> torch.Tensor:
    """The time masks a training-mode tiny CTC model draws for a padded batch, (steps, B, T)."""
    model = build_model(ModelConfig.preset("tiny", **overrides), "ctc", vocab_size=5).train()
    drawn = []

    def spy(*args, **kwargs):
        drawn.append(compute_span_mask(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(wav2vec2, "compute_span_mask", spy)
    torch.manual_seed(0)
    lengths = torch.tensor([32000, 24000, 16000, 9000])
    pad = torch.arange(32000)[None] >= lengths[:, None]
    for _ in range(5):
        model(torch.randn(4, 32000), pad)
    return torch.stack(drawn)


def test_finetuning_masks_the_same_number_of_frames_per_row_as_fairseq(monkeypatch):
    counts = _ctc_time_masks(monkeypatch).sum(-1)  # the default is fairseq's: same count
    assert (counts == counts[:, :1]).all() and (counts > 0).all()
    counts = _ctc_time_masks(monkeypatch, require_same_masks=False).sum(-1)
    assert (counts != counts[:, :1]).any()  # the per-row counts stay available as an option


def test_pretraining_refuses_per_row_mask_counts_and_bad_mask_dropout():
    with pytest.raises(ValueError, match="model.require_same_masks: false cannot pretrain"):
        build_model(ModelConfig.preset("tiny", require_same_masks=False), "pretrain")
    with pytest.raises(ValueError, match=r"'mask_dropout' = 1.0 is out of range: must be >= 0"):
        ModelConfig.preset("tiny", mask_dropout=1.0)
