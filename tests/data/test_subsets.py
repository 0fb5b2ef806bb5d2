"""Stage 2: Libri-Light folder subsets and the scaled, nested, speaker-balanced synth subsets."""

import logging
import shutil

import pytest
from fake_librispeech import write_fake_librispeech
from lhotse import SupervisionSegment, SupervisionSet, load_manifest
from lhotse.utils import fastcopy

from hourglass_w2v2.data.prepare.librispeech import BadCorpusError, prepare_corpus_manifests
from hourglass_w2v2.data.prepare.subsets import (
    draw_nested_subsets,
    prepare_librilight_subsets,
    prepare_scaled_subsets,
)


def pool(speakers: int, per_speaker: int, duration: float = 2.0) -> SupervisionSet:
    return SupervisionSet.from_segments(
        SupervisionSegment(id=f"{s}-1-{u:04d}", recording_id=f"{s}-1-{u:04d}", start=0,
                           duration=duration, speaker=str(s), text="A")
        for s in range(100, 100 + speakers) for u in range(per_speaker))


def test_nested_subsets_reach_their_duration_balanced_over_speakers():
    subsets = draw_nested_subsets(pool(5, 10), {"small": 9.0, "mid": 30.0, "all": 1e9}, seed=3)
    ids = {name: [s.id for s in sub] for name, sub in subsets.items()}
    assert len(ids["small"]) == 5  # 5 x 2 s is the first total >= 9 s
    assert len(ids["mid"]) == 15 and len(ids["all"]) == 50
    assert ids["mid"][:5] == ids["small"] and ids["all"][:15] == ids["mid"]  # nested prefixes
    assert len({s.speaker for s in subsets["small"]}) == 5  # one utterance per speaker first
    again = draw_nested_subsets(pool(5, 10), {"small": 9.0}, seed=3)
    assert [s.id for s in again["small"]] == ids["small"]
    other = draw_nested_subsets(pool(5, 10), {"all": 1e9}, seed=4)
    assert [s.id for s in other["all"]] != ids["all"]


def test_scaled_subsets_exclude_test_speakers(tmp_path):
    expected = write_fake_librispeech(tmp_path / "dl", finetuning=False)
    manifests = tmp_path / "manifests"
    prepare_corpus_manifests(tmp_path / "dl/LibriSpeech", manifests, "synth",
                             ["train-clean-100", "dev-clean"])
    # Make speaker 103 of the training pool also a dev speaker: it must be left out.
    dev_path = manifests / "synth_supervisions_dev-clean.jsonl.gz"
    dev = load_manifest(dev_path)
    dev = SupervisionSet.from_segments(
        [fastcopy(s, speaker="103") if i == 0 else s for i, s in enumerate(dev)])
    dev.to_file(dev_path)
    pool_hours = sum(u.duration for u in expected["train-clean-100"].values()
                     if u.speaker != "103") / 3600
    written = prepare_scaled_subsets(manifests, "synth", scale=None, seed=0)
    assert written["train-10h"][1] == pytest.approx(pool_hours)  # default scale: 10h = pool
    for name in ("train-10min", "train-1h", "train-10h"):
        sups = load_manifest(manifests / f"synth_supervisions_{name}.jsonl.gz")
        recs = load_manifest(manifests / f"synth_recordings_{name}.jsonl.gz")
        assert "103" not in {s.speaker for s in sups}
        assert {r.id for r in recs} == {s.recording_id for s in sups}
    ids = {name: {s.id for s in load_manifest(manifests / f"synth_supervisions_{name}.jsonl.gz")}
           for name in ("train-10min", "train-1h", "train-10h")}
    assert ids["train-10min"] <= ids["train-1h"] < ids["train-10h"]
    assert prepare_scaled_subsets(manifests, "synth") == {}  # all exist: skipped


def test_librilight_missing_folder_is_named_before_anything_is_written(tmp_path):
    write_fake_librispeech(tmp_path / "dl")
    ft = tmp_path / "dl/librispeech_finetuning"
    (ft / "1h/3/other").rename(tmp_path / "moved")
    missing = r"missing under .*librispeech_finetuning: 1h/3/other"
    with pytest.raises(FileNotFoundError, match=missing):
        prepare_librilight_subsets(ft, tmp_path / "manifests")
    assert not (tmp_path / "manifests").exists()


def test_librilight_bad_file_fails_before_any_subset_is_written(tmp_path):
    expected = write_fake_librispeech(tmp_path / "dl")
    bad = next(iter(set(expected["train-10h"]) - set(expected["train-1h"])))
    expected["train-10h"][bad].path.write_bytes(b"")
    with pytest.raises(BadCorpusError, match=f"{bad}.flac: zero-length audio file"):
        prepare_librilight_subsets(tmp_path / "dl/librispeech_finetuning", tmp_path / "m")
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


def _copy_utterance(utt, dest_split):
    """Copy one utterance (audio and transcript line) into another LibriSpeech-layout folder."""
    spk, chapter, _ = utt.utt_id.split("-")
    dest = dest_split / spk / chapter
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(utt.path, dest / utt.path.name)
    with open(dest / f"{spk}-{chapter}.trans.txt", "a") as f:
        f.write(f"{utt.utt_id} {utt.text}\n")
    return dest / utt.path.name


def test_librilight_duplicate_ids_across_folders_are_named(tmp_path):
    expected = write_fake_librispeech(tmp_path / "dl")
    ft = tmp_path / "dl/librispeech_finetuning"
    utt = next(iter(expected["train-10min"].values()))
    first = utt.path.parents[2]  # 1h/0/clean or 1h/0/other
    copy = _copy_utterance(utt, ft / "9h/clean")
    with pytest.raises(BadCorpusError) as err:
        prepare_librilight_subsets(ft, tmp_path / "m")
    msg = str(err.value)
    assert f"duplicate utterance id {utt.utt_id}" in msg
    assert str(copy) in msg and str(first) in msg
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


def test_librilight_duplicate_ids_skipped_keep_the_first(tmp_path, caplog):
    expected = write_fake_librispeech(tmp_path / "dl")
    ft = tmp_path / "dl/librispeech_finetuning"
    utt = next(iter(expected["train-10min"].values()))
    _copy_utterance(utt, ft / "1h/3/other")
    _copy_utterance(utt, ft / "9h/other")
    with caplog.at_level(logging.WARNING):
        written = prepare_librilight_subsets(ft, tmp_path / "m", skip_bad=True)
    assert "skipping 2 bad utterance(s) or file(s)" in caplog.text
    assert {k: n for k, (n, _) in written.items()} == {
        name: len(expected[name]) for name in ("train-10min", "train-1h", "train-10h")}
    recs = load_manifest(tmp_path / "m/librispeech_recordings_train-10h.jsonl.gz")
    assert recs[utt.utt_id].sources[0].source == str(utt.path)
