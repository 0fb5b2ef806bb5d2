"""Stage 1 on a fake LibriSpeech tree: manifests match what was written; each kind of bad
input is named, and either stops the stage with nothing written or is skipped and counted."""

import logging

import numpy as np
import pytest
import soundfile as sf
from fake_librispeech import write_fake_librispeech, write_utterance
from lhotse import load_manifest

from hourglass_w2v2.data.prepare.cuts import prepare_cut_sets
from hourglass_w2v2.data.prepare.librispeech import (
    BadCorpusError,
    prepare_corpus_manifests,
    scan_split,
)

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


def _add_stray_files(corpus):
    """What real downloads carry besides the corpus: LibriSpeech's top-level text files, macOS
    metadata (.DS_Store, AppleDouble ``._*`` twins of audio and transcripts, __MACOSX) and
    someone's notes."""
    for name in ("README.TXT", "SPEAKERS.TXT", "CHAPTERS.TXT", "BOOKS.TXT", "LICENSE.TXT"):
        (corpus / name).write_text("; LibriSpeech metadata\n")
    audio = _first_audio(corpus)
    chapter = audio.parent
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff\xfe\x00"
    (chapter / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1\x00\xff")
    (corpus / "dev-clean" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (chapter / f"._{audio.name}").write_bytes(apple)
    (chapter / f"._{chapter.parent.name}-{chapter.name}.trans.txt").write_bytes(apple)
    macosx = corpus / "dev-clean" / "__MACOSX" / chapter.parent.name / chapter.name
    macosx.mkdir(parents=True)
    (macosx / f"._{audio.name}").write_bytes(apple)
    (chapter / "notes.txt").write_text("re-recorded this chapter\n")
    (chapter / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    return chapter


def test_stray_files_are_ignored_and_reported(tree, caplog):
    corpus, manifests, expected = tree
    chapter = _add_stray_files(corpus)
    with caplog.at_level(logging.INFO):
        written = prepare_corpus_manifests(corpus, manifests, "librispeech", num_jobs=2)
    assert {p: n for p, (n, _) in written.items()} == {p: len(expected[p]) for p in PARTS}
    assert (f"{corpus / 'dev-clean'}: ignoring 5 hidden file(s) (.DS_Store, macOS ._* or "
            "__MACOSX metadata)") in caplog.text
    assert (f"{corpus / 'dev-clean'}: ignoring 2 file(s) that are neither *.flac audio nor "
            f"*.trans.txt transcripts, e.g. {chapter / 'cover.jpg'}") in caplog.text


def test_transcript_that_is_not_utf8_text_is_named(tree):
    corpus, manifests, _ = tree
    audio = _first_audio(corpus)
    trans = audio.parent / f"{'-'.join(audio.stem.split('-')[:2])}.trans.txt"
    trans.write_bytes(trans.read_bytes() + b"\xff\xfe broken\n")
    with pytest.raises(BadCorpusError, match=rf"{trans}: not UTF-8 text \(byte 0xff at offset "
                                             r"\d+\); re-extract it"):
        prepare_corpus_manifests(corpus, manifests, "librispeech", PARTS, num_jobs=2)


def test_other_sample_rates_are_counted_and_resampled_in_stage_3(tree, caplog):
    corpus, manifests, expected = tree
    chapter = _first_audio(corpus).parent
    spk, chap = int(chapter.parent.name), int(chapter.name)
    odd = {rate: write_utterance(chapter, spk, chap, 70 + i, "JULIET KILO", 2.345, rate)
           for i, rate in enumerate((22050, 8000, 44100))}
    with caplog.at_level(logging.INFO):
        prepare_corpus_manifests(corpus, manifests, "librispeech", ["dev-clean"], num_jobs=2)
    assert "3 not at 16000 Hz (resampled in stage 3)" in caplog.text
    done = prepare_cut_sets(manifests, "librispeech", ["dev-clean"], ["dev-clean"])
    assert done["dev-clean"].resampled == 3
    cuts = load_manifest(manifests / "librispeech_cuts_dev-clean.jsonl.gz")
    for utt in odd.values():
        cut = cuts[utt.utt_id]
        assert cut.sampling_rate == 16000
        assert cut.duration == pytest.approx(utt.duration, abs=1e-6)
        audio = cut.load_audio()
        assert audio.shape == (1, cut.num_samples)
        assert abs(cut.num_samples - 2.345 * 16000) <= 1
        assert 0.1 < np.abs(audio).max() < 1.0  # the tone survived resampling


def test_one_reader_with_the_options_decode_uses(tree):
    """``scan_split`` as ``bin.decode --cuts FOLDER`` calls it: ``.wav`` audio, references
    normalised, an empty reference kept, ids need not match the folder, and audio without a
    transcript line kept apart from the problems (it is left out, not an error)."""
    corpus, _, _ = tree
    audio = _first_audio(corpus)
    chapter = audio.parent
    trans = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
    first = audio.stem
    rest = [line for line in trans.read_text().splitlines() if not line.startswith(first)]
    # a flat copy: ids no longer match the folder, one utterance as .wav, lower-case text
    flat = corpus.parent / "flat"
    flat.mkdir()
    data, rate = sf.read(audio)
    sf.write(flat / f"{first}.wav", data, rate)
    for line in rest:
        (flat / f"{line.split()[0]}.flac").write_bytes((chapter / f"{line.split()[0]}.flac")
                                                      .read_bytes())
    (flat / "orphan.flac").write_bytes(audio.read_bytes())
    (flat / "x.trans.txt").write_text(f"{first} it's a “test”, ok\n" + "\n".join(
        [rest[0].split()[0]] + rest[1:]) + "\n")
    scan = scan_split(flat, num_jobs=2, audio_suffixes=(".flac", ".wav"), normalize_text=True,
                      require_text=False, check_layout=False)
    texts = {u.utt_id: u.text for u in scan.utterances}
    assert texts[first] == "IT'S A TEST OK"
    assert texts[rest[0].split()[0]] == ""
    assert {u.utt_id: u.audio.suffix for u in scan.utterances}[first] == ".wav"
    assert len(scan.utterances) == len(rest) + 1 and scan.problems == []
    assert scan.unpaired_audio == [f"{flat / 'orphan.flac'}: audio file has no transcript line"]
    # read as stage 1 reads, the same folder has a problem per utterance and the orphan
    strict = scan_split(flat, num_jobs=2)
    assert strict.utterances == []
    assert f"{flat / 'x.trans.txt'}:1: utterance id {first} does not match the folder ." in (
        strict.problems)
    assert f"{flat / 'x.trans.txt'}:2: empty transcript for utterance {rest[0].split()[0]}" in (
        strict.problems)
