"""The synthetic corpus: deterministic, in the exact LibriSpeech layout, disjoint splits."""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from hourglass_w2v2.data.synth.corpus import SUBSETS, CorpusSize, SubsetSize, generate_corpus

SIZE = CorpusSize(SubsetSize(3, 1, 2), SubsetSize(2, 1, 1), lm_sentences=40)


def read_tree(root):
    """{relative path: content} for text files and {relative path: samples} for FLAC."""
    texts, audio = {}, {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.suffix == ".flac":
            audio[rel] = sf.read(path, dtype="int16")[0]
        elif path.is_file():
            texts[rel] = path.read_text()
    return texts, audio


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    stats = generate_corpus(out, SIZE, seed=7, num_jobs=2)
    return out, stats


def test_same_seed_gives_identical_corpus_whatever_the_worker_count(corpus, tmp_path):
    out, _ = corpus
    generate_corpus(tmp_path, SIZE, seed=7, num_jobs=1)
    texts_a, audio_a = read_tree(out)
    texts_b, audio_b = read_tree(tmp_path)
    texts_a["LibriSpeech/SYNTH-CORPUS.json"] = texts_b["LibriSpeech/SYNTH-CORPUS.json"] = ""
    assert texts_a == texts_b
    assert audio_a.keys() == audio_b.keys()
    for key in audio_a:
        np.testing.assert_array_equal(audio_a[key], audio_b[key], err_msg=key)


def test_other_seed_gives_other_text(corpus, tmp_path):
    out, _ = corpus
    generate_corpus(tmp_path, CorpusSize(SubsetSize(1, 1, 1), SubsetSize(1, 1, 1), 5), seed=8,
                    num_jobs=1)
    assert not set((out / "lm/lm-norm.txt").read_text().splitlines()) & set(
        (tmp_path / "lm/lm-norm.txt").read_text().splitlines())


def test_exact_librispeech_layout(corpus):
    out, stats = corpus
    root = out / "LibriSpeech"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(SUBSETS)
    for subset in SUBSETS:
        shape = SIZE.shape(subset)
        speakers = list((root / subset).iterdir())
        assert len(speakers) == shape.speakers == stats["subsets"][subset]["speakers"]
        for spk in speakers:
            chapters = list(spk.iterdir())
            assert len(chapters) == shape.chapters
            for chapter in chapters:
                assert re.fullmatch(r"\d+", spk.name) and re.fullmatch(r"\d+", chapter.name)
                trans = chapter / f"{spk.name}-{chapter.name}.trans.txt"
                lines = trans.read_text().splitlines()
                assert len(lines) == shape.utterances
                flacs = sorted(p.name for p in chapter.glob("*.flac"))
                ids = [line.split(" ", 1)[0] for line in lines]
                assert flacs == [f"{i}.flac" for i in ids]
                assert sorted(p.name for p in chapter.iterdir()) == sorted(flacs + [trans.name])
                for i, line in enumerate(lines):
                    utt_id, text = line.split(" ", 1)
                    assert utt_id == f"{spk.name}-{chapter.name}-{i:04d}"
                    assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", text)
                    info = sf.info(chapter / f"{utt_id}.flac")
                    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
                    assert 0.5 < info.duration < 20
    assert (root / "SPEAKERS.TXT").is_file()
    assert not list(out.glob(".LibriSpeech*")) and not list(out.rglob("*.tmp*"))


def test_splits_are_disjoint_in_speakers_voices_and_sentences(corpus):
    out, stats = corpus
    root = out / "LibriSpeech"
    speakers, sentences = {}, {}
    for subset in SUBSETS:
        speakers[subset] = {p.name for p in (root / subset).iterdir()}
        sentences[subset] = {line.split(" ", 1)[1] for t in (root / subset).rglob("*.trans.txt")
                             for line in t.read_text().splitlines()}
    voices = {}
    for line in (root / "SPEAKERS.TXT").read_text().splitlines():
        if not line.startswith(";"):
            fields = [f.strip() for f in line.split("|")]
            voices.setdefault(fields[2], set()).add(fields[4].split()[0])
    lm_text = set((out / "lm/lm-norm.txt").read_text().splitlines())
    assert sentences["train-clean-100"] <= lm_text
    assert len(lm_text) == SIZE.lm_sentences + SIZE.train.total == stats["lm_text_sentences"]
    for test in ("dev-clean", "test-clean", "test-other"):
        assert not speakers[test] & speakers["train-clean-100"]
        assert not voices[test] & voices["train-clean-100"]
        assert not sentences[test] & lm_text


def test_stats_report_vocabulary_and_perplexity(corpus):
    out, stats = corpus
    assert json.loads((out / "LibriSpeech/SYNTH-CORPUS.json").read_text()) == stats
    assert stats["grammar_vocabulary_size"] >= 1500
    assert stats["test_3gram_perplexity"] > 1
    # Scored tokens: each test sentence's words plus </s> (as many as "<id> <words>" fields).
    assert stats["test_words"] + stats["test_oov_words"] == sum(
        len(line.split(" ")) for t in (out / "LibriSpeech").glob("test-*/*/*/*.trans.txt")
        for line in t.read_text().splitlines())


def test_rerun_skips_existing_corpus(corpus):
    out, stats = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
    assert generate_corpus(out, SIZE, seed=7) == stats
    assert before == {p: p.stat().st_mtime_ns for p in out.rglob("*.flac")}
