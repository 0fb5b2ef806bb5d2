"""Stage 3: raw-audio cut sets (resampling, duration filters, combined pretrain set)."""

import pytest
from lhotse import load_manifest

from hourglass_w2v2.data.cuts import make_cuts, prepare_cut_sets
from hourglass_w2v2.data.librispeech import prepare_corpus_manifests
from hourglass_w2v2.data.testing import write_fake_librispeech


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
                            pretrain_duration=(2.0, 15.6), seed=1)
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
    with pytest.raises(ValueError, match=r"no pretraining cuts within \(20.0, 30.0\) s"):
        prepare_cut_sets(path, "synth", [], ["dev-clean"], pretrain_duration=(20.0, 30.0))
    assert not (path / "synth_cuts_pretrain.jsonl.gz").exists()
