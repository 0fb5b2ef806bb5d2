"""bin/decode end to end with a random tiny CTC checkpoint, and its bad-input handling."""

import ast
import json

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


def save_ckpt(path, vocab_size, lang_dir):
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
            "update": 10,
            "config": {"data": {"normalize": False}},
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
    save_ckpt(exp / "checkpoints" / "ckpt-10.pt", Tokenizer(toy_lang).vocab_size, toy_lang)
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
        ValueError,
        match=r"has \d+ units but the CTC head of .*best.pt has \d+ "
        r"outputs \(it was trained with lang dir data/lang_x\)",
    ):
        run(exp, toy_lang, manifests, "--test-sets", "test-clean")


def test_missing_checkpoint(tmp_path, toy_lang):
    with pytest.raises(FileNotFoundError, match="no checkpoint in .*checkpoints"):
        run(tmp_path / "exp" / "none", toy_lang, tmp_path, "--test-sets", "test-clean")
    with pytest.raises(FileNotFoundError, match="checkpoint .*nope.pt does not exist"):
        run(
            tmp_path,
            toy_lang,
            tmp_path,
            "--test-sets",
            "test-clean",
            "--checkpoint",
            str(tmp_path / "nope.pt"),
        )


def test_missing_test_set_is_named(recipe, toy_lang):
    root, manifests, exp = recipe
    with pytest.raises(FileNotFoundError, match="synth_cuts_dev-other.jsonl.gz"):
        run(exp, toy_lang, manifests, "--test-sets", "dev-other")


def test_empty_reference(recipe, toy_lang, caplog):
    root, manifests, exp = recipe
    make_cuts(root / "e", ["THE CAT", ""], "e").to_file(manifests / "synth_cuts_empty.jsonl.gz")
    run(exp, toy_lang, manifests, "--test-sets", "empty")
    assert "empty reference" in caplog.text and "e-1" in caplog.text
    assert "greedy" in read_summary(exp / "decode" / "ctc-greedy" / "wer-summary-empty.txt")
    make_cuts(root / "e2", [""], "e2").to_file(manifests / "synth_cuts_allempty.jsonl.gz")
    with pytest.raises(ValueError, match="'allempty' has no reference words"):
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
