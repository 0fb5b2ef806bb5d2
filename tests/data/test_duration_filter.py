"""benchmarks/duration_filter.py: the figures of the old 2-15.6 s filter and of cropping."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "duration_filter.py"
spec = importlib.util.spec_from_file_location("duration_filter", SCRIPT)
duration_filter = importlib.util.module_from_spec(spec)
sys.modules["duration_filter"] = duration_filter  # its dataclass looks the module up
spec.loader.exec_module(duration_filter)


def test_figures_count_drops_and_crops():
    f = duration_filter.figures(np.array([1.0, 3.0, 15.0, 16.0, 20.0, 35.0]))
    assert (f.utts, f.old_dropped_utts, f.old_too_long_utts, f.short_utts, f.cropped_utts) == (
        6, 4, 3, 1, 3)
    assert f.hours * 3600 == pytest.approx(90.0)
    assert f.old_dropped_hours * 3600 == pytest.approx(72.0)
    assert f.crop_removed_hours * 3600 == pytest.approx(0.375 + 4.375 + 19.375)


@pytest.mark.parametrize("part", list(duration_filter.PUBLISHED))
def test_simulated_parts_have_the_published_size_and_shape(part):
    count, hours = duration_filter.PUBLISHED[part]
    d, q = duration_filter.simulated_durations(part)
    assert len(d) == count and d.sum() / 3600 == pytest.approx(hours, rel=1e-3)
    assert d.max() <= 35.0 and np.all(np.diff(q) >= 0)
    # re-applying the 3-speed perturbation lands near icefall's published percentiles
    mixed = duration_filter.mixture_quantiles(q)
    assert np.abs(mixed - duration_filter.PERTURBED_PERCENTILES[part]).max() < 2.0
