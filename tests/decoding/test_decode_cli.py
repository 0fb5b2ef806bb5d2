"""bin/decode end to end with a random tiny CTC checkpoint, and its bad-input handling."""

import ast
import json
import logging

import kaldialign
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from hourglass_w2v2.bin import decode as decode_cli
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.lang.tokenizer import Tokenizer
from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.scoring import read_summary

TEXTS = ["THE CAT SAT", "A DOG RAN", "THE CAT RAN FAST"]


def make_cuts(audio_dir, texts, prefix):
    rng = np.random.default_rng(0)
    audio_dir.mkdir(parents=True, exist_ok=True)
    cuts = []
    for i, text in enumerate(texts):
        path = audio_dir / f"{prefix}-{i}.wav"
        sf.write(path, rng.normal(scale=0.1, size=8000 + 2000 * i).astype(np.float32), 16000)
        rec = Recording.from_file(path)
        cut = rec.to_cut()
        cut.supervisions = [
            SupervisionSegment(
                id=rec.id,
                recording_id=rec.id,
                start=0,
                duration=rec.duration,
                text=text,
                speaker="s",
            )
        ]
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def save_ckpt(path, vocab_size, lang_dir, tokens=None, update=10):
    """A random tiny CTC checkpoint; ``tokens=None`` is one made before units were recorded."""
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    model = build_model(cfg, task="ctc", vocab_size=vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": cfg.to_dict(),
            "task": "ctc",
            "vocab_size": vocab_size,
            "lang_dir": str(lang_dir),
            "update": update,
            "config": {"data": {"normalize": False}},
            **({} if tokens is None else {"tokens": list(tokens)}),
        },
        path,
    )


@pytest.fixture
def recipe(tmp_path, toy_lang):
    manifests = tmp_path / "data" / "manifests"
    manifests.mkdir(parents=True)
    for name in ("test-clean", "test-other"):
        make_cuts(tmp_path / "audio", TEXTS, name).to_file(
            manifests / f"synth_cuts_{name}.jsonl.gz"
        )
    exp = tmp_path / "exp" / "ft"
    tok = Tokenizer(toy_lang)
    save_ckpt(exp / "checkpoints" / "ckpt-10.pt", tok.vocab_size, toy_lang, tok.id2token)
    return tmp_path, manifests, exp


def run(exp, lang, manifests, *extra):
    decode_cli.main(
        [
            "--exp-dir",
            str(exp),
            "--lang-dir",
            str(lang),
            "--manifest-dir",
            str(manifests),
            "--corpus",
            "synth",
            "--max-duration",
            "2",
            "--lm-scales",
            "0.5",
            "1.0",
            *extra,
        ]
    )


def test_decode_writes_scored_results(recipe, toy_lang):
    root, manifests, exp = recipe
    run(
        exp,
        toy_lang,
        manifests,
        "--method",
        "ctc-greedy",
        "1best",
        "--graph",
        "HL",
        "HLG",
        "--test-sets",
        "test-clean",
        "test-other",
    )
    for method, keys in [
        ("ctc-greedy", ["greedy"]),
        ("1best-HL", ["no_lm"]),
        ("1best-HLG", ["lm_scale_0.5", "lm_scale_1"]),
    ]:
        d = exp / "decode" / method
        assert list(d.glob("log-decode-*"))
        for test in ("test-clean", "test-other"):
            wers = read_summary(d / f"wer-summary-{test}.txt")
            assert sorted(wers) == sorted(keys)
            assert sorted(read_summary(d / f"cer-summary-{test}.txt")) == sorted(keys)
            rtf = json.loads((d / f"rtf-{test}.json").read_text())
            assert rtf["audio_seconds"] == pytest.approx(0.5 + 0.625 + 0.75)
            assert rtf["rtf"] > 0
            for key in keys:
                # the errs counts must be kaldialign's on the pairs of the recogs file
                lines = (d / f"recogs-{test}-{key}.txt").read_text().splitlines()
                pairs = [
                    (
                        ast.literal_eval(r.split("ref=", 1)[1]),
                        ast.literal_eval(h.split("hyp=", 1)[1]),
                    )
                    for r, h in zip(lines[::2], lines[1::2], strict=True)
                ]
                assert sorted(" ".join(r) for r, _ in pairs) == sorted(TEXTS)
                errors = sum(kaldialign.edit_distance(r, h)["total"] for r, h in pairs)
                errs = (d / f"errs-{test}-{key}.txt").read_text().splitlines()
                assert errs[0] == f"%WER = {100 * errors / 10:.2f}"
                assert wers[key] == pytest.approx(100 * errors / 10, abs=0.005)


def test_cuts_file_and_librispeech_folder(recipe, toy_lang):
    root, manifests, exp = recipe
    own = root / "my_cuts_mine.jsonl.gz"
    make_cuts(root / "own", TEXTS[:2], "own").to_file(own)
    folder = root / "LibriSpeech" / "my-set"
    chapter = folder / "19" / "198"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        sf.write(chapter / f"19-198-000{i}.flac", rng.normal(scale=0.1, size=9000), 16000)
    (chapter / "19-198.trans.txt").write_text("19-198-0000 THE CAT\n19-198-0001 A DOG\n")
    run(exp, toy_lang, manifests, "--method", "ctc-greedy", "--cuts", str(own), str(folder))
    d = exp / "decode" / "ctc-greedy"
    assert (d / "wer-summary-mine.txt").is_file()
    recogs = (d / "recogs-my-set-greedy.txt").read_text()
    assert "19-198-0000:\tref=['THE', 'CAT']" in recogs


def test_lang_dir_units_must_match_the_head(recipe, toy_lang):
    root, manifests, exp = recipe
    save_ckpt(exp / "checkpoints" / "best.pt", Tokenizer(toy_lang).vocab_size + 3, "data/lang_x")
    with pytest.raises(
        SystemExit,
        match=r"has \d+ units but the CTC head of .*best.pt has \d+ "
        r"outputs \(it was trained with lang dir data/lang_x\)",
    ):
        run(exp, toy_lang, manifests, "--test-sets", "test-clean")


def test_missing_checkpoint(tmp_path, toy_lang):
    with pytest.raises(SystemExit, match="no checkpoint in .*checkpoints"):
        run(tmp_path / "exp" / "none", toy_lang, tmp_path, "--test-sets", "test-clean")
    with pytest.raises(SystemExit, match="checkpoint .*nope.pt does not exist"):
        run(
            tmp_path,
            toy_lang,
            tmp_path,
            "--test-sets",
            "test-clean",
            "--checkpoint",
            str(tmp_path / "nope.pt"),
        )


def test_k2_backend_without_k2_or_its_graph_is_a_one_line_error(recipe, toy_lang, monkeypatch):
    from hourglass_w2v2.decoding import k2_backend

    root, manifests, exp = recipe
    monkeypatch.setattr(k2_backend, "available", lambda: False)  # as on a machine without k2
    graph = toy_lang / "HLG.pt"
    with pytest.raises(SystemExit) as e:
        run(exp, toy_lang, manifests, "--test-sets", "test-clean", "--method", "1best",
            "--backend", "k2")
    # the toy lang dir has HLG.pt only where k2 was importable when it was built
    and_graph = "" if graph.is_file() else f" and {graph} (written when k2 imports)"
    assert str(e.value) == (
        f"decode: error: --backend k2 needs k2 installed{and_graph}; --backend kaldi (or auto) "
        "decodes with kaldi-decoder instead"
    )


def test_missing_test_set_is_named(recipe, toy_lang):
    root, manifests, exp = recipe
    with pytest.raises(SystemExit, match="synth_cuts_dev-other.jsonl.gz"):
        run(exp, toy_lang, manifests, "--test-sets", "dev-other")


def test_empty_reference(recipe, toy_lang, caplog):
    root, manifests, exp = recipe
    make_cuts(root / "e", ["THE CAT", ""], "e").to_file(manifests / "synth_cuts_empty.jsonl.gz")
    run(exp, toy_lang, manifests, "--test-sets", "empty")
    assert "empty reference" in caplog.text and "e-1" in caplog.text
    assert "greedy" in read_summary(exp / "decode" / "ctc-greedy" / "wer-summary-empty.txt")
    make_cuts(root / "e2", [""], "e2").to_file(manifests / "synth_cuts_allempty.jsonl.gz")
    with pytest.raises(SystemExit, match="'allempty' has no reference words"):
        run(exp, toy_lang, manifests, "--test-sets", "allempty")


def test_interrupted_decode_leaves_no_partial_results(recipe, toy_lang, monkeypatch):
    root, manifests, exp = recipe
    calls = {"n": 0}
    original = Decoder.decode

    def flaky(self, log_probs):
        calls["n"] += 1
        if calls["n"] == len(TEXTS) + 2:  # in the middle of the second test set
            raise KeyboardInterrupt
        return original(self, log_probs)

    monkeypatch.setattr(Decoder, "decode", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(exp, toy_lang, manifests, "--test-sets", "test-clean", "test-other")
    d = exp / "decode" / "ctc-greedy"
    assert (d / "wer-summary-test-clean.txt").is_file()
    assert not list(d.glob("*test-other*")) and not list(d.glob(".*"))
    monkeypatch.setattr(Decoder, "decode", original)
    run(exp, toy_lang, manifests, "--test-sets", "test-clean", "test-other")
    assert read_summary(d / "wer-summary-test-other.txt")
    assert len(list(d.glob("recogs-*"))) == 2


def test_nbest_and_lm_rescore(recipe, toy_lang):
    root, manifests, exp = recipe
    arpa4 = toy_lang.parent / "G_4_gram.arpa"
    run(
        exp,
        toy_lang,
        manifests,
        "--method",
        "nbest",
        "lm-rescore",
        "--graph",
        "HLG",
        "--rescore-lm",
        str(arpa4),
        "--beam",
        "8",
        "--num-paths",
        "5",
        "--test-sets",
        "test-clean",
    )
    for method in ("nbest-HLG", "lm-rescore-HLG"):
        wers = read_summary(exp / "decode" / method / "wer-summary-test-clean.txt")
        assert sorted(wers) == ["lm_scale_0.5", "lm_scale_1"]


# --- bad input and faults (issue #29) ---------------------------------------------------------


def write_folder(folder, lines, audio_ids, corrupt=()):
    """A LibriSpeech-layout chapter ``19/198`` with ``lines`` as its ``.trans.txt``."""
    chapter = folder / "19" / "198"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for utt in audio_ids:
        sf.write(chapter / f"{utt}.flac", rng.normal(scale=0.1, size=9000), 16000)
    for utt, data in corrupt:
        (chapter / f"{utt}.flac").write_bytes(data)
    (chapter / "19-198.trans.txt").write_text("".join(f"{line}\n" for line in lines))
    return chapter


def recog_refs(path):
    """``{cut_id: ref words}`` of a recogs file."""
    refs = {}
    for line in path.read_text().splitlines():
        cut_id, _, rest = line.partition(":\t")
        if rest.startswith("ref="):
            refs[cut_id] = ast.literal_eval(rest[4:])
    return refs


def summary_record(path):
    """The ``# name: value`` lines of a summary file."""
    return dict(
        line[2:].split(": ", 1) for line in path.read_text().splitlines() if line.startswith("# ")
    )


def other_order_lang(root, toy_lang):
    """A char lang dir with the toy lang's units (same count) in another id order."""
    from hourglass_w2v2.lang.prepare import prepare_lang

    words = (toy_lang.parent / "transcripts.txt").read_text().split()
    # the char model orders its pieces by frequency: reversing the text's letter counts
    # reorders the units while keeping the same set
    letters = sorted({c for w in words for c in w})
    text = "\n".join(" ".join(c * (i + 1) for i, c in enumerate(letters)) for _ in range(20))
    (root / "other.txt").write_text(text + "\n" + "\n".join(words) + "\n")
    lang = root / "lang_other"
    prepare_lang([root / "other.txt"], lang, "char")
    return lang


def test_lang_dir_with_units_in_another_order_is_refused(recipe, toy_lang, caplog):
    root, manifests, exp = recipe
    other = other_order_lang(root, toy_lang)
    mine, theirs = Tokenizer(toy_lang), Tokenizer(other)
    assert mine.vocab_size == theirs.vocab_size and mine.id2token != theirs.id2token
    with pytest.raises(SystemExit, match=r"tokens.txt: id \d+ is '.+' here but '.+' in the units"):
        run(exp, other, manifests, "--test-sets", "test-clean")
    assert not (exp / "decode" / "ctc-greedy" / "wer-summary-test-clean.txt").exists()
    # a checkpoint from before units were recorded: decoded, with a warning saying what is unchecked
    save_ckpt(exp / "checkpoints" / "best.pt", mine.vocab_size, toy_lang)
    run(exp, toy_lang, manifests, "--test-sets", "test-clean")
    assert "records no units" in caplog.text and "best.pt" in caplog.text
    assert read_summary(exp / "decode" / "ctc-greedy" / "wer-summary-test-clean.txt")


def test_fine_tuning_checkpoints_record_their_units(toy_lang):
    from hourglass_w2v2.training.config import ExperimentConfig
    from hourglass_w2v2.training.ctc_task import CtcTask

    cfg = ExperimentConfig.from_dict(
        {"task": "ctc", "ctc": {"lang_dir": str(toy_lang), "init_from_scratch": True}}
    )
    fields = CtcTask(cfg).checkpoint_fields()
    assert fields["tokens"] == Tokenizer(toy_lang).id2token
    assert fields["tokens"][0] == "<blk>" and len(fields["tokens"]) == fields["vocab_size"]


def test_cuts_named_like_a_recipe_test_set_are_refused(recipe, toy_lang):
    root, manifests, exp = recipe
    run(exp, toy_lang, manifests, "--test-sets", "test-clean")
    d = exp / "decode" / "ctc-greedy"
    before = (d / "recogs-test-clean-greedy.txt").read_text()
    folder = root / "LibriSpeech" / "test-clean"
    write_folder(folder, ["19-198-0000 THE CAT"], ["19-198-0000"])
    with pytest.raises(SystemExit, match=r"recipe test set .*synth_cuts_test-clean.*NAME=PATH"):
        run(exp, toy_lang, manifests, "--cuts", str(folder))
    assert (d / "recogs-test-clean-greedy.txt").read_text() == before
    # two external sets of the same name
    with pytest.raises(SystemExit, match="both named 'x'"):
        run(exp, toy_lang, manifests, "--cuts", f"x={folder}", f"x={folder}")
    run(exp, toy_lang, manifests, "--cuts", f"ls-test-clean={folder}")
    assert list(recog_refs(d / "recogs-ls-test-clean-greedy.txt")) == ["19-198-0000"]
    assert (d / "recogs-test-clean-greedy.txt").read_text() == before
    # another folder under a name whose results came from elsewhere is refused too
    other = root / "elsewhere" / "ls-test-clean"
    write_folder(other, ["19-198-0001 A DOG"], ["19-198-0001"])
    with pytest.raises(SystemExit, match=r"wer-summary-ls-test-clean.txt holds results of"):
        run(exp, toy_lang, manifests, "--cuts", str(other))
    assert list(recog_refs(d / "recogs-ls-test-clean-greedy.txt")) == ["19-198-0000"]


def test_librispeech_references_are_normalised(recipe, toy_lang, caplog):
    caplog.set_level(logging.INFO)
    root, manifests, exp = recipe
    folder = root / "mixed"
    write_folder(
        folder,
        [
            "19-198-0000 the cat, sat",
            "19-198-0001 \u201cA\u201d dog\u2019s RAN!",
            "19-198-0002 THE DOG",
        ],
        ["19-198-0000", "19-198-0001", "19-198-0002"],
    )
    run(exp, toy_lang, manifests, "--cuts", str(folder))
    refs = recog_refs(exp / "decode" / "ctc-greedy" / "recogs-mixed-greedy.txt")
    assert refs == {
        "19-198-0000": ["THE", "CAT", "SAT"],
        "19-198-0001": ["A", "DOG'S", "RAN"],
        "19-198-0002": ["THE", "DOG"],
    }
    assert "normalised 2 of 3 transcript lines" in caplog.text
    assert "19-198.trans.txt:1" in caplog.text


def test_folder_audio_without_transcript_and_transcript_without_audio(recipe, toy_lang, caplog):
    root, manifests, exp = recipe
    folder = root / "gappy"
    write_folder(
        folder,
        ["19-198-0000 THE CAT", "19-198-0001 A DOG"],
        ["19-198-0000", "19-198-0002"],  # 0001 has no audio, 0002 no transcript line
    )
    with pytest.raises(
        SystemExit, match=r"(?s)19-198.trans.txt:2: .*19-198-0001 has no audio.*--skip-bad"
    ):
        run(exp, toy_lang, manifests, "--cuts", str(folder))
    assert "19-198-0002.flac: audio file has no transcript line" in caplog.text
    run(exp, toy_lang, manifests, "--cuts", str(folder), "--skip-bad")
    d = exp / "decode" / "ctc-greedy"
    assert list(recog_refs(d / "recogs-gappy-greedy.txt")) == ["19-198-0000"]
    record = summary_record(d / "wer-summary-gappy.txt")
    assert record["left out"] == "2 utterance(s), listed in skipped-gappy.txt"
    skipped = (d / "skipped-gappy.txt").read_text()
    assert "19-198-0001 has no audio" in skipped
    assert "19-198-0002.flac: audio file has no transcript line" in skipped
    assert "left out 2 utterance(s)" in caplog.text


def test_corrupt_and_empty_audio(recipe, toy_lang):
    root, manifests, exp = recipe
    # a folder: zero-length and garbage FLAC files
    folder = root / "broken"
    write_folder(
        folder,
        ["19-198-0000 THE CAT", "19-198-0001 A DOG", "19-198-0002 THE DOG"],
        ["19-198-0000"],
        corrupt=[("19-198-0001", b""), ("19-198-0002", b"fLaC not really")],
    )
    with pytest.raises(SystemExit, match=r"19-198-0001.flac: zero-length audio file"):
        run(exp, toy_lang, manifests, "--cuts", str(folder))
    # a cut set whose audio file was emptied after the manifest was made
    cuts = make_cuts(root / "cs", TEXTS, "cs")
    cuts.to_file(root / "mine_cuts_cs.jsonl.gz")
    (root / "cs" / "cs-1.wav").write_bytes(b"")
    with pytest.raises(SystemExit, match=r"cut cs-1: cannot read audio from .*cs-1.wav"):
        run(exp, toy_lang, manifests, "--cuts", str(root / "mine_cuts_cs.jsonl.gz"))
    run(
        exp,
        toy_lang,
        manifests,
        "--cuts",
        str(folder),
        str(root / "mine_cuts_cs.jsonl.gz"),
        "--skip-bad",
    )
    d = exp / "decode" / "ctc-greedy"
    assert list(recog_refs(d / "recogs-broken-greedy.txt")) == ["19-198-0000"]
    assert sorted(recog_refs(d / "recogs-cs-greedy.txt")) == ["cs-0", "cs-2"]
    assert summary_record(d / "wer-summary-cs.txt")["left out"].startswith("1 utterance(s)")
    skipped = (d / "skipped-broken.txt").read_text().splitlines()
    assert len(skipped) == 2 and "zero-length" in skipped[0] and "corrupt" in skipped[1]
    assert "cs-1.wav" in (d / "skipped-cs.txt").read_text()


def test_folder_is_read_as_stage_1_reads_one(recipe, toy_lang, caplog):
    """The reader prepare.sh stage 1 uses: macOS metadata and stray files are ignored and
    reported, ``.wav`` audio is accepted, truncated audio and a transcript that is not UTF-8
    text are named."""
    caplog.set_level(logging.INFO)
    root, manifests, exp = recipe
    folder = root / "strays"
    chapter = write_folder(folder, ["19-198-0000 THE CAT", "19-198-0001 A DOG"], ["19-198-0000"])
    sf.write(chapter / "19-198-0001.wav", np.random.default_rng(2).normal(0, 0.1, 9000), 16000)
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff\xfe\x00"
    (chapter / "._19-198.trans.txt").write_bytes(apple)
    (chapter / "._19-198-0000.flac").write_bytes(apple)
    (chapter / "notes.txt").write_text("re-recorded\n")
    run(exp, toy_lang, manifests, "--cuts", str(folder))
    d = exp / "decode" / "ctc-greedy"
    assert sorted(recog_refs(d / "recogs-strays-greedy.txt")) == ["19-198-0000", "19-198-0001"]
    assert f"{folder}: ignoring 2 hidden file(s)" in caplog.text
    assert (f"{folder}: ignoring 1 file(s) that are neither *.flac / *.wav audio nor "
            f"*.trans.txt transcripts, e.g. {chapter / 'notes.txt'}") in caplog.text
    flac = chapter / "19-198-0000.flac"
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    with pytest.raises(SystemExit, match=r"19-198-0000.flac: audio file is truncated or damaged"):
        run(exp, toy_lang, manifests, "--cuts", str(folder))
    (chapter / "19-198.trans.txt").write_bytes(b"19-198-0000 THE CAT\n19-198-0001 A D\xf6G\n")
    with pytest.raises(
        SystemExit, match=r"(?s)19-198.trans.txt: not UTF-8 text \(byte 0xf6 at offset 35\)"
    ):
        run(exp, toy_lang, manifests, "--cuts", str(folder))


def test_a_kill_while_writing_leaves_no_mixed_results(recipe, toy_lang, monkeypatch, capsys):
    import os

    from hourglass_w2v2 import scoring
    from hourglass_w2v2.bin import results as results_cli

    root, manifests, exp = recipe
    (exp / "train_info.json").write_text(json.dumps({"updates": 500, "num_params": 1}))
    run(exp, toy_lang, manifests, "--test-sets", "test-clean")
    d = exp / "decode" / "ctc-greedy"
    assert summary_record(d / "wer-summary-test-clean.txt")["update"] == "10"
    tok = Tokenizer(toy_lang)
    later = exp / "checkpoints" / "ckpt-20.pt"
    save_ckpt(later, tok.vocab_size, toy_lang, tok.id2token, update=20)
    calls = {"n": 0}
    real_replace = os.replace

    def dying_replace(src, dst):
        calls["n"] += os.path.dirname(dst) == str(d)  # renames into place, not within staging
        if calls["n"] == 3:  # killed after the first files of the group are in place
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(scoring.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        run(exp, toy_lang, manifests, "--test-sets", "test-clean", "--checkpoint", str(later))
    monkeypatch.setattr(scoring.os, "replace", real_replace)
    # no summary claims results that are partly another checkpoint's: the set reads as undecoded
    assert not (d / "wer-summary-test-clean.txt").exists()
    assert not (d / "cer-summary-test-clean.txt").exists()
    run(exp, toy_lang, manifests, "--test-sets", "test-clean", "--checkpoint", str(later))
    record = summary_record(d / "wer-summary-test-clean.txt")
    assert record["checkpoint"] == str(later) and record["update"] == "20"
    assert summary_record(d / "cer-summary-test-clean.txt")["checkpoint"] == str(later)
    assert not [p for p in d.iterdir() if p.name.startswith(".")]
    # the results table shows the update that produced the numbers, not train_info.json's
    results_cli.main([str(exp)])
    row = capsys.readouterr().out.splitlines()[2].split(" | ")
    assert row[2] == "greedy" and row[-3] == "20"
