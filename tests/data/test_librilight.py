"""Cutting Libri-Light chapters into training segments (data/prepare/librilight.py)."""

import pytest
from lhotse import Recording, SupervisionSegment, SupervisionSet

from hourglass_w2v2.data.prepare.librilight import (
    SegmentStats,
    fixed_windows,
    merge_vad,
    segment_cuts,
)


def test_merge_vad_grows_segments_up_to_the_maximum():
    spans = [(0.5, 4.0), (4.5, 9.0), (9.2, 12.0), (13.0, 14.0)]
    assert merge_vad(spans, 10.0) == [(0.5, 9.0), (9.2, 14.0)]
    assert merge_vad(spans, 20.0) == [(0.5, 14.0)]


def test_merge_vad_splits_a_long_stretch_evenly():
    assert merge_vad([(1.0, 26.0)], 10.0) == [(1.0, 1.0 + 25 / 3), (1.0 + 25 / 3, 1.0 + 50 / 3),
                                              (1.0 + 50 / 3, 26.0)]


def test_fixed_windows_overlap_and_end_at_the_recording_end():
    assert fixed_windows(25.0, 10.0, 2.0) == [(0.0, 10.0), (8.0, 18.0), (15.0, 25.0)]
    assert fixed_windows(26.0, 10.0, 2.0) == [(0.0, 10.0), (8.0, 18.0), (16.0, 26.0)]
    assert fixed_windows(6.0, 10.0, 2.0) == [(0.0, 6.0)]
    with pytest.raises(ValueError, match="overlap 10.0 s must be >= 0 and < the window 10.0 s"):
        fixed_windows(30.0, 10.0, 10.0)


def test_segment_cuts_counts_and_drops_short_segments():
    rec = Recording(id="small/1/b/f", sources=[], sampling_rate=16000, num_samples=16000 * 40,
                    duration=40.0)
    sups = SupervisionSet.from_segments([
        SupervisionSegment(id=f"s{i}", recording_id=rec.id, start=s, duration=e - s)
        for i, (s, e) in enumerate([(0.5, 10.0), (10.5, 20.0), (30.0, 31.0)])])
    stats = SegmentStats("small")
    cuts = list(segment_cuts([rec], sups, "vad", 20.0, 2.0, 0.0, stats))
    assert [(c.id, c.start, c.duration) for c in cuts] == [("small/1/b/f-0000050", 0.5, 19.5)]
    assert (stats.recordings, stats.vad_segments, stats.cuts, stats.too_short) == (1, 3, 1, 1)
    assert stats.too_short_hours == pytest.approx(1 / 3600)
    stats = SegmentStats("small")
    windows = list(segment_cuts([rec], sups, "window", 15.0, 2.0, 5.0, stats))
    assert [(c.start, c.duration) for c in windows] == [(0.0, 15.0), (10.0, 15.0), (20.0, 15.0),
                                                        (25.0, 15.0)]
