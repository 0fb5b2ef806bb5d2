"""PretrainDataset crops long utterances as fairseq's RawAudioDataset does: a batch comes out at
min(max_sample_size, its shortest cut), each cut at a random offset that is new every epoch and
reproducible for the same seed, epoch and batch."""

import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording

from hourglass_w2v2.data.datasets import PretrainDataset, filter_durations

SCALE = 2.0**-19  # float32 holds k * 2^-19 exactly for k < 2^24, so a sample names its index


@pytest.fixture(scope="module")
def ramps(tmp_path_factory) -> CutSet:
    """Cuts of 20 s, 17 s and 3 s whose sample i has the value i * SCALE (offset readable)."""
    tmp = tmp_path_factory.mktemp("ramps")
    recordings = []
    for name, seconds in (("a20", 20.0), ("b17", 17.0), ("c3", 3.0)):
        path = tmp / f"{name}.wav"
        ramp = (np.arange(int(seconds * 16000)) * SCALE).astype(np.float32)
        sf.write(path, ramp, 16000, subtype="FLOAT")
        recordings.append(Recording.from_file(path, recording_id=name))
    return CutSet.from_cuts(r.to_cut() for r in recordings)


def offsets(batch) -> list[int]:
    """Where each crop starts in its utterance (read from the ramp's first sample)."""
    return [round(float(w[0]) / SCALE) for w in batch["waveforms"]]


def test_long_cuts_come_out_at_max_sample_size(ramps):
    long_pair = ramps.subset(cut_ids=["a20", "b17"])
    batch = PretrainDataset(max_sample_size=250_000, seed=0)[long_pair]
    assert batch["waveforms"].shape == (2, 250_000)  # 15.625 s, not the 17 s shortest
    assert batch["num_samples"] == 320_000 + 272_000
    for start, wave, size in zip(offsets(batch), batch["waveforms"], (320_000, 272_000),
                                 strict=True):
        assert 0 <= start <= size - 250_000
        # a contiguous piece of the utterance
        np.testing.assert_array_equal(wave.numpy(), (np.arange(start, start + 250_000) * SCALE
                                                     ).astype(np.float32))


def test_a_batch_is_cropped_to_its_shortest_cut(ramps):
    batch = PretrainDataset(max_sample_size=250_000, seed=0)[ramps]
    assert batch["waveforms"].shape == (3, 48_000)
    assert offsets(batch)[2] == 0  # the shortest cut is used whole


def test_offsets_are_reproducible_and_change_with_epoch_and_seed(ramps):
    long_pair = ramps.subset(cut_ids=["a20", "b17"])
    seen = {}
    for seed in (0, 1):
        for epoch in (0, 1, 2):
            ds = PretrainDataset(max_sample_size=100_000, seed=seed)
            ds.set_epoch(epoch)
            seen[seed, epoch] = offsets(ds[long_pair])
            again = PretrainDataset(max_sample_size=100_000, seed=seed)
            again.set_epoch(epoch)
            assert offsets(again[long_pair]) == seen[seed, epoch]  # e.g. after resuming
    assert len({tuple(v) for v in seen.values()}) == len(seen)  # every (seed, epoch) differs
    # a dataset starts at epoch 0
    assert offsets(PretrainDataset(max_sample_size=100_000, seed=1)[long_pair]) == seen[1, 0]


def test_negative_epoch_is_refused():
    with pytest.raises(ValueError, match="epoch must be >= 0, got -1"):
        PretrainDataset().set_epoch(-1)


def test_filter_durations_keeps_the_closed_range():
    """One duration filter serves the FLAC and Shar paths: bounds are inclusive, 0/None off."""
    from lhotse.testing.dummies import dummy_cut

    cuts = CutSet.from_cuts(dummy_cut(i, duration=d) for i, d in enumerate([0.5, 1.0, 2.0, 3.0]))
    assert [c.duration for c in filter_durations(cuts, 1.0, 2.0)] == [1.0, 2.0]
    assert [c.duration for c in filter_durations(cuts, 0.0, None)] == [0.5, 1.0, 2.0, 3.0]
    assert [c.duration for c in filter_durations(cuts, 0.0, 1.0)] == [0.5, 1.0]
