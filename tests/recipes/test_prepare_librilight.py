"""egs/librispeech/SSL/prepare.sh stages 6-7 on a fake Libri-Light tree in the real layout."""

import numpy as np
import pytest
from fake_librilight import write_fake_librilight
from lhotse import CutSet, load_manifest


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, recipe):
    tmp = tmp_path_factory.mktemp("librilight")
    work = recipe.make(tmp, "librispeech")
    chapters = write_fake_librilight(work / "download" / "librilight", parts=("small",))
    out = recipe.run(work, "--stage", "6", "--stop-stage", "7", "--num-jobs", "2",
                     "--librilight-dir", "download/librilight", "--shar-shard-size", "4")
    assert out.returncode == 0, out.stderr
    return work, chapters, out.stderr


def test_stage6_cuts_follow_the_vad_times(prepared):
    work, chapters, log = prepared
    cuts = load_manifest(work / "data/manifests/librilight_cuts_small.jsonl.gz")
    by_rec = {c.recording_id: c for c in chapters}
    assert {c.recording_id for c in cuts} == set(by_rec)
    for cut in cuts:
        spans = by_rec[cut.recording_id].voice_activity
        # every cut starts where a speech stretch starts and ends where one ends, <= 30 s
        assert any(abs(cut.start - s) < 1e-6 for s, _ in spans), cut.id
        assert any(abs(cut.end - e) < 1e-3 for _, e in spans), cut.id
        assert 2.0 <= cut.duration <= 30.0 and not cut.supervisions
    # no speech stretch is lost: each lies inside exactly one cut of its recording
    n_spans = sum(len(c.voice_activity) for c in chapters)
    covered = sum(
        sum(cut.start - 1e-6 <= s and e <= cut.end + 1e-3 for cut in cuts
            if cut.recording_id == ch.recording_id)
        for ch in chapters for s, e in ch.voice_activity)
    assert covered == n_spans
    hours = sum(c.duration for c in cuts) / 3600
    assert (f"librilight small: {len(chapters)} recordings" in log
            and f"{n_spans} VAD segments) -> {len(cuts)} cuts, {hours:.3f} h" in log)
    assert "Stage 6: Libri-Light small" in log


def test_stage7_shar_holds_every_cut_with_its_audio(prepared):
    work, _, log = prepared
    cuts = load_manifest(work / "data/manifests/librilight_cuts_small.jsonl.gz")
    shar = work / "data/shar/pretrain"
    n_shards = -(-len(cuts) // 4)
    assert len(list(shar.glob("cuts.*.jsonl.gz"))) == n_shards
    assert len(list(shar.glob("recording.*.tar"))) == n_shards
    read = list(CutSet.from_shar(in_dir=shar))
    assert sorted(c.id for c in read) == sorted(c.id for c in cuts)
    assert [c.id for c in read] != [c.id for c in cuts]  # shuffled before sharding
    originals = {c.id: c for c in cuts}
    for cut in read[:3]:
        np.testing.assert_array_equal(cut.load_audio(), originals[cut.id].load_audio())
    assert "Stage 7: Shar shards of data/manifests/librilight_cuts_small.jsonl.gz" in log
    assert f"{n_shards} shards of up to 4 cuts, {len(cuts)} cuts" in log


def test_rerun_skips_both_stages(prepared, recipe):
    work, _, _ = prepared
    before = {p: p.stat().st_mtime_ns for p in (work / "data").rglob("*") if p.is_file()}
    out = recipe.run(work, "--stage", "6", "--stop-stage", "7",
                     "--librilight-dir", "download/librilight")
    assert out.returncode == 0, out.stderr
    assert "librilight_cuts_small.jsonl.gz exists, skipping" in out.stderr
    assert "Stage 7: data/shar/pretrain exists, skipping" in out.stderr
    assert before == {p: p.stat().st_mtime_ns for p in (work / "data").rglob("*") if p.is_file()}


def test_missing_json_fails_naming_the_file(tmp_path, recipe):
    work = recipe.make(tmp_path, "librispeech")
    chapters = write_fake_librilight(work / "ll", files=1, books=1)
    victim = (work / "ll" / chapters[0].recording_id).with_suffix(".json")
    victim.unlink()
    out = recipe.run(work, "--stage", "6", "--stop-stage", "6", "--librilight-dir", "ll")
    assert out.returncode == 1
    assert "1 of 2 files in ll/small have no voice-activity JSON" in out.stderr
    assert str(victim.relative_to(work)) in out.stderr
    assert not (work / "data/manifests/librilight_cuts_small.jsonl.gz").exists()


def test_missing_part_names_what_the_tree_holds(tmp_path, recipe):
    work = recipe.make(tmp_path, "librispeech")
    write_fake_librilight(work / "ll", files=1, books=1, speakers=1)
    out = recipe.run(work, "--stage", "6", "--stop-stage", "6", "--librilight-dir", "ll",
                     "--librilight-parts", "small medium")
    assert out.returncode == 1
    assert "ll/medium does not exist (--librilight-dir ll holds: small)" in out.stderr


def test_stage7_without_cut_sets_fails(tmp_path, recipe):
    work = recipe.make(tmp_path, "librispeech")
    out = recipe.run(work, "--stage", "7", "--stop-stage", "7")
    assert out.returncode == 1
    assert "no pretraining cut set in data/manifests; run stage 3" in out.stderr
