"""egs/librispeech/SSL/prepare.sh stages 1-3 on a fake LibriSpeech + Libri-Light tree."""

import time

import pytest
from fake_librispeech import write_fake_librispeech, write_utterance
from lhotse import load_manifest

PARTS = ["train-clean-100", "dev-clean", "test-clean", "test-other"]
SUBSETS = ["train-10min", "train-1h", "train-10h"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, recipe):
    tmp = tmp_path_factory.mktemp("librispeech")
    work = recipe.make(tmp, "librispeech")
    expected = write_fake_librispeech(work / "download")
    out = recipe.run(work, "--stage", "1", "--stop-stage", "3", "--num-jobs", "2")
    assert out.returncode == 0, out.stderr
    return work, expected, out.stderr


@pytest.mark.parametrize("part", PARTS + SUBSETS)
def test_cuts_match_what_was_generated(prepared, part):
    work, expected, _ = prepared
    cuts = load_manifest(work / f"data/manifests/librispeech_cuts_{part}.jsonl.gz")
    want = expected[part]
    if part in SUBSETS:  # fine-tuning subsets drop cuts outside 0.5-30 s: none here
        assert all(0.5 <= u.duration <= 30 for u in want.values())
    assert sorted(c.id for c in cuts) == sorted(want)
    for cut in cuts:
        utt = want[cut.id]
        assert cut.sampling_rate == 16000
        assert cut.duration == pytest.approx(utt.duration, abs=1e-3)
        assert len(cut.supervisions) == 1
        sup = cut.supervisions[0]
        assert (sup.text, sup.speaker) == (utt.text, utt.speaker)
        assert not cut.has_features and cut.has_recording
    # Audio loads at 16 kHz with the generated length, including the one 8 kHz file.
    for cut in cuts:
        if want[cut.id].sampling_rate != 16000:
            assert cut.load_audio().shape == (1, round(want[cut.id].duration * 16000))


def test_pretrain_set_skips_short_cuts_and_is_shuffled(prepared):
    work, expected, log = prepared
    cuts = load_manifest(work / "data/manifests/librispeech_cuts_pretrain.jsonl.gz")
    keep = [u for u in expected["train-clean-100"].values() if u.duration >= 2.0]
    assert 0 < len(keep) < len(expected["train-clean-100"])  # the fake tree exercises the filter
    assert sorted(c.id for c in cuts) == sorted(u.utt_id for u in keep)
    assert [c.id for c in cuts] != sorted(c.id for c in cuts)
    short = len(expected["train-clean-100"]) - len(keep)
    assert (f"librispeech pretrain (train-clean-100): {len(keep)} cuts" in log
            and f"1 resampled to 16000 Hz, dropped {short} too short / 0 too long; "
                "0 cuts longer than 15.625 s will be cropped, removing 0.000 h of" in log)


def test_log_reports_counts_and_resampling(prepared):
    _, expected, log = prepared
    for part in PARTS:
        assert f"librispeech {part}: {len(expected[part])} utterances, 2" in log or (
            f"librispeech {part}: {len(expected[part])} utterances, 3" in log)
    assert "train-clean-100: 10 utterances, 3 speakers" in log
    assert "1 not at 16000 Hz (resampled in stage 3)" in log
    for subset in SUBSETS:
        assert f"librispeech {subset}: {len(expected[subset])} utterances" in log
    for stage in (1, 2, 3):
        assert "(prepare.sh:" in log and f"Stage {stage}:" in log


def test_rerun_skips_every_stage_quickly(prepared, recipe):
    work, _, _ = prepared
    manifests = work / "data/manifests"
    before = {p: p.stat().st_mtime_ns for p in manifests.iterdir()}
    start = time.time()
    out = recipe.run(work, "--stage", "1", "--stop-stage", "3")
    assert out.returncode == 0 and time.time() - start < 2.0
    for stage in (1, 2, 3):
        assert f"Stage {stage}: " in out.stderr and "skipping" in out.stderr
    assert before == {p: p.stat().st_mtime_ns for p in manifests.iterdir()}


def test_another_dl_dir_is_refused_not_its_manifests_reused(prepared, recipe, tmp_path):
    work, _, _ = prepared
    manifests = work / "data/manifests"
    before = {p: p.stat().st_mtime_ns for p in manifests.iterdir()}
    for stage in ("1", "2"):
        out = recipe.run(work, "--stage", stage, "--stop-stage", "3", "--dl-dir", str(tmp_path))
        assert out.returncode == 1
        done = "manifests" if stage == "1" else "finetune_subsets"
        assert (f"Error: data/manifests/.librispeech_{done}.done was made from --dl-dir "
                f"{work / 'download'}, not {tmp_path}; pass that --dl-dir, or delete data/ to "
                "prepare from this one") in out.stderr
    assert before == {p: p.stat().st_mtime_ns for p in manifests.iterdir()}
    # the same folder by another path is the same --dl-dir
    out = recipe.run(work, "--stage", "1", "--stop-stage", "2", "--dl-dir", "./download/")
    assert out.returncode == 0 and "Stage 1: manifests exist, skipping" in out.stderr


def test_stage_selection_runs_only_the_chosen_stage(prepared, recipe):
    work, expected, _ = prepared
    manifests = work / "data/manifests"
    (manifests / ".librispeech_finetune_subsets.done").unlink()
    for subset in SUBSETS:
        for kind in ("recordings", "supervisions"):
            (manifests / f"librispeech_{kind}_{subset}.jsonl.gz").unlink()
    out = recipe.run(work, "--stage", "2", "--stop-stage", "2")
    assert out.returncode == 0, out.stderr
    assert "Stage 1" not in out.stderr and "Stage 3" not in out.stderr
    assert "Stage 2: Libri-Light fine-tuning subsets" in out.stderr
    sups = load_manifest(manifests / "librispeech_supervisions_train-10h.jsonl.gz")
    assert len(sups) == len(expected["train-10h"])


def test_bad_audio_stops_stage_1_with_nothing_written(tmp_path, recipe):
    work = recipe.make(tmp_path, "librispeech")
    expected = write_fake_librispeech(work / "download")
    bad = next(iter(expected["test-other"].values())).path
    bad.write_bytes(b"garbage")
    out = recipe.run(work, "--stage", "1", "--stop-stage", "3")
    assert out.returncode != 0
    assert f"{bad}: corrupt or unreadable audio file" in out.stderr
    assert "Stage 2" not in out.stderr
    assert list((work / "data/manifests").iterdir()) == []
    out = recipe.run(work, "--stage", "1", "--stop-stage", "1", "--skip-bad", "true")
    assert out.returncode == 0, out.stderr
    sups = load_manifest(work / "data/manifests/librispeech_supervisions_test-other.jsonl.gz")
    assert len(sups) == len(expected["test-other"]) - 1
    assert "1 bad utterance(s) or file(s) were skipped" in out.stderr


def test_download_as_shipped_with_strays_and_other_rates(tmp_path, recipe):
    """Stages 1-3 on the trees as downloaded: LibriSpeech's top-level text files, Libri-Light's
    phones/ and README, macOS metadata, a 22.05 kHz FLAC; nothing crashes, strays are logged."""
    work = recipe.make(tmp_path, "librispeech")
    expected = write_fake_librispeech(work / "download")
    ls, ft = work / "download/LibriSpeech", work / "download/librispeech_finetuning"
    for name in ("README.TXT", "SPEAKERS.TXT", "CHAPTERS.TXT", "BOOKS.TXT", "LICENSE.TXT"):
        (ls / name).write_text("; metadata\n")
    (ft / "phones").mkdir()
    (ft / "phones/phones.txt").write_text("AA\n")
    (ft / "README").write_text("Libri-light limited supervision\n")
    fold = next((ft / "1h/0/clean").rglob("*.flac")).parent
    (fold / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (fold / "notes.txt").write_text("to check\n")
    first = next(iter(expected["train-clean-100"].values())).path.parent
    odd = write_utterance(first, int(first.parent.name), int(first.name), 88, "GOLF HOTEL",
                          4.2, 22050)
    out = recipe.run(work, "--stage", "1", "--stop-stage", "3", "--num-jobs", "2")
    assert out.returncode == 0, out.stderr
    assert f"{ft / '1h/0/clean'}: ignoring 1 hidden file(s)" in out.stderr
    assert (f"{ft / '1h/0/clean'}: ignoring 1 file(s) that are neither *.flac audio nor "
            f"*.trans.txt transcripts, e.g. {fold / 'notes.txt'}") in out.stderr
    assert "2 not at 16000 Hz (resampled in stage 3)" in out.stderr
    cuts = load_manifest(work / "data/manifests/librispeech_cuts_pretrain.jsonl.gz")
    assert cuts[odd.utt_id].sampling_rate == 16000
    assert cuts[odd.utt_id].load_audio().shape == (1, round(4.2 * 16000))
    sups = load_manifest(work / "data/manifests/librispeech_supervisions_train-1h.jsonl.gz")
    assert len(sups) == len(expected["train-1h"])


def test_stage_0_names_a_missing_lm_before_any_stage_runs(tmp_path, recipe):
    work = recipe.make(tmp_path, "librispeech")
    (work / "download/LibriSpeech").mkdir(parents=True)
    (work / "download/librispeech_finetuning").mkdir()
    out = recipe.run(work, "--stage", "0", "--stop-stage", "5")
    assert out.returncode == 1
    assert "download/lm/3-gram.pruned.1e-7.arpa not found (stage 5 builds HLG from it)" in (
        out.stderr
    )
    assert "Stage 1" not in out.stderr and not (work / "data").exists()
    # without stage 5 the LM is not needed yet
    out = recipe.run(work, "--stage", "0", "--stop-stage", "0")
    assert out.returncode == 0, out.stderr
    # OpenSLR 11 ships it gzipped: the error says to unzip it
    (work / "download/lm").mkdir()
    (work / "download/lm/3-gram.pruned.1e-7.arpa.gz").write_bytes(b"\x1f\x8b")
    out = recipe.run(work, "--stage", "0", "--stop-stage", "5")
    assert out.returncode == 1
    assert ("download/lm/3-gram.pruned.1e-7.arpa.gz is compressed; stage 5 reads the .arpa: "
            "gunzip -k it there") in out.stderr
    (work / "download/lm/3-gram.pruned.1e-7.arpa").write_text("\\data\\\n")
    out = recipe.run(work, "--stage", "0", "--stop-stage", "5")
    assert "not found (stage 5" not in out.stderr and "Stage 1" in out.stderr


def test_no_train_part_stops_stage_3_naming_what_is_missing(tmp_path, recipe):
    work = recipe.make(tmp_path, "librispeech")
    (work / "download/LibriSpeech/dev-clean").mkdir(parents=True)
    out = recipe.run(work, "--stage", "3", "--stop-stage", "3")
    assert out.returncode == 1
    assert (f"Error: no train-* part under {work}/download/LibriSpeech (the pretraining cuts and "
            "stage 4's units come from them)") in out.stderr
    assert "usage:" not in out.stderr and not (work / "data/manifests").exists()
