"""Stage 3: raw-audio cut sets (resampling, duration filters, combined pretrain set)."""

import logging
import shutil

import pytest
from fake_librispeech import write_fake_librispeech, write_utterance
from lhotse import load_manifest

from hourglass_w2v2.data.prepare.cuts import make_cuts, prepare_cut_sets
from hourglass_w2v2.data.prepare.librispeech import prepare_corpus_manifests


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuts")
    expected = write_fake_librispeech(tmp / "dl", finetuning=False)
    prepare_corpus_manifests(tmp / "dl/LibriSpeech", tmp / "m", "synth",
                             ["train-clean-100", "dev-clean"])
    return tmp / "m", expected


def test_other_rates_are_resampled_and_counted(manifests):
    path, expected = manifests
    cuts, stats = make_cuts(path, "synth", "train-clean-100")
    at_8k = [u for u in expected["train-clean-100"].values() if u.sampling_rate == 8000]
    assert stats.resampled == len(at_8k) == 1
    cut = cuts[at_8k[0].utt_id]
    assert cut.sampling_rate == 16000
    assert cut.load_audio().shape == (1, round(at_8k[0].duration * 16000))


def test_duration_bounds_drop_and_count(manifests):
    path, expected = manifests
    durations = [u.duration for u in expected["train-clean-100"].values()]
    cuts, stats = make_cuts(path, "synth", "train-clean-100", 2.0, 3.5)
    assert stats.too_short == sum(d < 2.0 for d in durations) > 0
    assert stats.too_long == sum(d > 3.5 for d in durations) > 0
    assert stats.cuts == len(cuts) == len(durations) - stats.too_short - stats.too_long
    assert stats.hours == pytest.approx(sum(d for d in durations if 2.0 <= d <= 3.5) / 3600)


def test_cut_sets_and_pretrain_written_once(manifests):
    path, expected = manifests
    done = prepare_cut_sets(path, "synth", ["dev-clean"], ["train-clean-100", "dev-clean"],
                            seed=1)
    assert sorted(done) == ["dev-clean", "pretrain"]
    pretrain = load_manifest(path / "synth_cuts_pretrain.jsonl.gz")
    everything = {**expected["train-clean-100"], **expected["dev-clean"]}
    assert sorted(c.id for c in pretrain) == sorted(
        k for k, u in everything.items() if u.duration >= 2.0)
    assert not list(path.glob(".tmp*"))
    assert prepare_cut_sets(path, "synth", ["dev-clean"], ["train-clean-100"]) == {}


def test_empty_pretrain_set_is_an_error(manifests):
    path, _ = manifests
    (path / "synth_cuts_pretrain.jsonl.gz").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"no pretraining cuts of at least 320000 samples "
                                         r"\(20 s, min_sample_size\) in \['dev-clean'\]"):
        prepare_cut_sets(path, "synth", [], ["dev-clean"], min_sample_size=320000)
    assert not (path / "synth_cuts_pretrain.jsonl.gz").exists()


@pytest.fixture(scope="module")
def long_manifests(tmp_path_factory):
    """train-clean-100 of the fake tree plus a 20 s and a 17 s utterance (over the crop limit)."""
    tmp = tmp_path_factory.mktemp("long")
    expected = write_fake_librispeech(tmp / "dl", finetuning=False)
    first = next(iter(expected["train-clean-100"].values()))
    spk, chapter, _ = first.utt_id.split("-")
    for index, seconds in ((50, 20.0), (51, 17.0)):
        utt = write_utterance(first.path.parent, int(spk), int(chapter), index, "KILO LIMA",
                              seconds)
        expected["train-clean-100"][utt.utt_id] = utt
    prepare_corpus_manifests(tmp / "dl/LibriSpeech", tmp / "m", "synth", ["train-clean-100"])
    return tmp / "m", expected["train-clean-100"]


def test_pretrain_set_keeps_long_cuts_and_counts_what_cropping_removes(long_manifests, caplog):
    path, expected = long_manifests
    with caplog.at_level(logging.INFO):
        done = prepare_cut_sets(path, "synth", [], ["train-clean-100"], seed=3)
    pretrain = load_manifest(path / "synth_cuts_pretrain.jsonl.gz")
    durations = {k: u.duration for k, u in expected.items()}
    # only cuts under fairseq's min_sample_size (32000 samples = 2 s) are dropped
    assert sorted(c.id for c in pretrain) == sorted(k for k, d in durations.items() if d >= 2.0)
    assert max(c.duration for c in pretrain) == pytest.approx(20.0)
    stats = done["pretrain"]
    assert (stats.too_short, stats.too_long) == (sum(d < 2.0 for d in durations.values()), 0)
    assert stats.to_crop == 2
    assert stats.crop_hours == pytest.approx((20.0 - 15.625 + 17.0 - 15.625) / 3600)
    total = sum(d for d in durations.values() if d >= 2.0) / 3600
    assert stats.hours == pytest.approx(total)
    assert (f"2 cuts longer than 15.625 s will be cropped, removing {stats.crop_hours:.3f} h "
            f"of {total:.3f} h") in caplog.text


def test_min_and_max_sample_size_are_in_samples(long_manifests):
    path, expected = long_manifests
    (path / "synth_cuts_pretrain.jsonl.gz").unlink(missing_ok=True)
    done = prepare_cut_sets(path, "synth", [], ["train-clean-100"], min_sample_size=48000,
                            max_sample_size=288000)
    durations = [u.duration for u in expected.values()]
    assert done["pretrain"].cuts == sum(d >= 3.0 for d in durations)
    assert done["pretrain"].to_crop == 1  # only the 20 s cut is over 18 s
    assert done["pretrain"].crop_hours == pytest.approx(2.0 / 3600)
    (path / "synth_cuts_pretrain.jsonl.gz").unlink()


def test_pretrain_parts_sharing_ids_are_named(long_manifests):
    path, _ = long_manifests
    for kind in ("recordings", "supervisions"):
        shutil.copy(path / f"synth_{kind}_train-clean-100.jsonl.gz",
                    path / f"synth_{kind}_train-clean-360.jsonl.gz")
    with pytest.raises(ValueError, match=r"train-clean-360 repeats \d+ cut id\(s\) of "
                                         r"train-clean-100 \(e.g. \d+-\d+-\d+\)"):
        prepare_cut_sets(path, "synth", [], ["train-clean-100", "train-clean-360"])
    assert not (path / "synth_cuts_pretrain.jsonl.gz").exists()
