"""Stage 1 on a fake LibriSpeech tree: manifests match what was written; each kind of bad
input is named, and either stops the stage with nothing written or is skipped and counted."""

import logging

import pytest
from lhotse import load_manifest

from hourglass_w2v2.data.librispeech import BadCorpusError, prepare_corpus_manifests
from hourglass_w2v2.data.testing import write_fake_librispeech

PARTS = ["train-clean-100", "dev-clean", "test-clean", "test-other"]


@pytest.fixture
def tree(tmp_path):
    expected = write_fake_librispeech(tmp_path / "download", finetuning=False)
    return tmp_path / "download" / "LibriSpeech", tmp_path / "manifests", expected


def test_manifests_match_the_tree(tree):
    corpus, manifests, expected = tree
    written = prepare_corpus_manifests(corpus, manifests, "librispeech", num_jobs=2)
    assert sorted(written) == sorted(PARTS)  # found by auto-detection
    for part in PARTS:
        sups = load_manifest(manifests / f"librispeech_supervisions_{part}.jsonl.gz")
        recs = load_manifest(manifests / f"librispeech_recordings_{part}.jsonl.gz")
        assert {s.id for s in sups} == set(expected[part]) == {r.id for r in recs}
        for sup in sups:
            utt = expected[part][sup.id]
            assert (sup.text, sup.speaker) == (utt.text, utt.speaker)
            assert sup.duration == pytest.approx(utt.duration, abs=1e-6)
            assert recs[sup.id].sampling_rate == utt.sampling_rate
        assert written[part][0] == len(expected[part])


def _first_audio(corpus, part="dev-clean"):
    return sorted((corpus / part).rglob("*.flac"))[0]


def corrupt(corpus):
    path = _first_audio(corpus)
    path.write_bytes(b"this is not a flac file" * 10)
    return path, "corrupt or unreadable audio file"


def truncated(corpus):
    path = _first_audio(corpus)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return path, "audio file is truncated or damaged"


def zero_length(corpus):
    path = _first_audio(corpus)
    path.write_bytes(b"")
    return path, "zero-length audio file (0 bytes)"


def transcript_without_audio(corpus):
    path = _first_audio(corpus)
    path.unlink()
    return path, f"transcript line {path.stem} has no audio file"


def audio_without_transcript(corpus):
    src = _first_audio(corpus)
    path = src.with_name(src.stem[:-4] + "0077.flac")
    path.write_bytes(src.read_bytes())
    return path, "audio file has no transcript line"


def empty_transcript(corpus):
    path = _first_audio(corpus)
    trans = path.parent / f"{'-'.join(path.stem.split('-')[:2])}.trans.txt"
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join([path.stem] + lines[1:]) + "\n")
    return trans, f"empty transcript for utterance {path.stem}"


def id_not_matching_folder(corpus):
    path = _first_audio(corpus)
    trans = path.parent / f"{'-'.join(path.stem.split('-')[:2])}.trans.txt"
    spk, _, utt = path.stem.split("-")
    wrong = f"{spk}-999-{utt}"
    trans.write_text(trans.read_text().replace(path.stem, wrong))
    path.rename(path.with_name(f"{wrong}.flac"))
    return trans, f"utterance id {wrong} does not match the folder {spk}/{path.parent.name}"


BAD_CASES = [corrupt, truncated, zero_length, transcript_without_audio, audio_without_transcript,
             empty_transcript, id_not_matching_folder]


@pytest.mark.parametrize("make_bad", BAD_CASES, ids=lambda f: f.__name__)
def test_bad_input_fails_naming_the_file_and_writes_nothing(tree, make_bad):
    corpus, manifests, _ = tree
    path, message = make_bad(corpus)
    with pytest.raises(BadCorpusError) as err:
        prepare_corpus_manifests(corpus, manifests, "librispeech", PARTS, num_jobs=2)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "1 bad utterance(s) or file(s), nothing written" in str(err.value)
    # The bad file is in dev-clean, but no part (not even train-clean-100) was written.
    assert not manifests.exists() or list(manifests.iterdir()) == []


@pytest.mark.parametrize("make_bad", BAD_CASES, ids=lambda f: f.__name__)
def test_skip_bad_leaves_out_and_counts(tree, make_bad, caplog):
    corpus, manifests, expected = tree
    path, message = make_bad(corpus)
    with caplog.at_level(logging.WARNING):
        written = prepare_corpus_manifests(corpus, manifests, "librispeech", PARTS,
                                           skip_bad=True, num_jobs=2)
    assert "skipping 1 bad utterance(s) or file(s)" in caplog.text and message in caplog.text
    # An orphan audio file is extra, every other case loses one utterance.
    lost = 0 if make_bad is audio_without_transcript else 1
    assert written["dev-clean"][0] == len(expected["dev-clean"]) - lost
    assert written["train-clean-100"][0] == len(expected["train-clean-100"])
    sups = load_manifest(manifests / "librispeech_supervisions_dev-clean.jsonl.gz")
    assert path.stem not in {s.id for s in sups}


def test_missing_corpus_or_part_is_named(tmp_path, tree):
    corpus, manifests, _ = tree
    with pytest.raises(FileNotFoundError, match=f"corpus folder not found: {tmp_path / 'nope'}"):
        prepare_corpus_manifests(tmp_path / "nope", manifests, "librispeech")
    with pytest.raises(FileNotFoundError, match=f"corpus folder not found: {corpus}/dev-other"):
        prepare_corpus_manifests(corpus, manifests, "librispeech", ["dev-clean", "dev-other"])
    assert not manifests.exists()


def test_existing_parts_are_skipped(tree, caplog):
    corpus, manifests, _ = tree
    prepare_corpus_manifests(corpus, manifests, "librispeech", ["dev-clean"])
    before = {p: p.stat().st_mtime_ns for p in manifests.iterdir()}
    # A now-corrupt file in a finished part is not even looked at again.
    corrupt(corpus)
    with caplog.at_level(logging.INFO):
        assert prepare_corpus_manifests(corpus, manifests, "librispeech", ["dev-clean"]) == {}
    assert "dev-clean: manifests exist, skipping" in caplog.text
    assert before == {p: p.stat().st_mtime_ns for p in manifests.iterdir()}
