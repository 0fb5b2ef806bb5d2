"""egs/librispeech/SSL/prepare.sh stages 4-5 (units, LMs, graphs) on the fake LibriSpeech tree,
with tiny stand-ins for OpenSLR 11's 3-gram.pruned.1e-7.arpa and 4-gram.arpa."""

import importlib.util
import time
from pathlib import Path

import pytest
from fake_librispeech import write_fake_librispeech

from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.lang.lm import train_arpa
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table

_spec = importlib.util.spec_from_file_location(
    "recipes_conftest", Path(__file__).parents[1] / "recipes" / "conftest.py"
)
_recipes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_recipes)

LANGS = ["lang_char", "lang_bpe_30"]
# a word only the LMs know: stage 4 must take G's words into words.txt
LM_ONLY = "ZULU ALPHA BRAVO"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("librispeech_lang")
    work = _recipes.make_recipe_dir(tmp, "librispeech")
    expected = write_fake_librispeech(work / "download")
    out = _recipes.run_prepare(work, "--stage", "1", "--stop-stage", "3", "--num-jobs", "1")
    assert out.returncode == 0, out.stderr
    texts = sorted({u.text for part in expected.values() for u in part.values()})
    (tmp / "lm.txt").write_text("\n".join([*texts, LM_ONLY]) + "\n")
    lm = work / "download" / "lm"
    train_arpa([tmp / "lm.txt"], 3, lm / "3-gram.pruned.1e-7.arpa")
    train_arpa([tmp / "lm.txt"], 4, lm / "4-gram.arpa")
    start = time.time()
    out = _recipes.run_prepare(work, "--stage", "4", "--stop-stage", "5", "--bpe-vocab-sizes", "30")
    assert out.returncode == 0, out.stderr
    return work, texts, out.stderr, time.time() - start


@pytest.mark.parametrize("lang", LANGS)
def test_lang_dirs_and_graphs_exist(prepared, lang):
    work, texts, log, _ = prepared
    d = work / "data" / lang
    for name in ("tokens.txt", "words.txt", "lexicon.txt", "lexicon_disambig.txt"):
        assert (d / name).stat().st_size > 0, name
    assert (d / ("char.model" if lang == "lang_char" else "bpe.model")).is_file()
    for graph in ("H", "L", "L_disambig", "HL", "HLG"):
        assert (d / f"{graph}.fst").stat().st_size > 0, graph
    assert f"wrote data/{lang}/HLG.fst" in log
    words = read_token_table(d / "words.txt")
    assert {w for t in texts for w in t.split()} | {"ZULU"} <= set(words)
    assert Tokenizer(d).vocab_size == (
        30 if lang == "lang_bpe_30" else len(read_token_table(d / "tokens.txt"))
    )


def test_lms_are_linked_and_converted(prepared):
    work, _, _, _ = prepared
    lm = work / "data" / "lm"
    assert (lm / "G_3_gram.arpa").resolve() == work / "download/lm/3-gram.pruned.1e-7.arpa"
    assert (lm / "G_4_gram.arpa").resolve() == work / "download/lm/4-gram.arpa"
    # G (written per lang dir; both have the same words.txt) backs off on #0 : <eps>
    backoff = read_token_table(work / "data/lang_bpe_30/words.txt")["#0"]
    arcs = [line.split() for line in (lm / "G_3_gram.fst.txt").read_text().splitlines()]
    assert any(len(a) >= 4 and a[2:4] == [str(backoff), "0"] for a in arcs)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("text", ["CHARLIE DELTA", "ZULU ALPHA"])
def test_words_decode_through_hlg(prepared, make_posteriors, lang, text):
    work, _, _, _ = prepared
    d = work / "data" / lang
    lp = make_posteriors(Tokenizer(d), Tokenizer(d).encode(text))
    assert Decoder("1best", d, "HLG", lm_scales=[1.0]).decode(lp) == {"lm_scale_1": text.split()}
    rescore = Decoder(
        "lm-rescore", d, "HLG", lm_scales=[1.0], rescore_lm=work / "data/lm/G_4_gram.arpa"
    )
    assert rescore.decode(lp) == {"lm_scale_1": text.split()}


def test_rerun_skips_stages_4_and_5(prepared):
    work, _, _, first_run = prepared
    hlg = work / "data/lang_char/HLG.fst"
    before = hlg.stat().st_mtime_ns
    start = time.time()
    out = _recipes.run_prepare(work, "--stage", "4", "--stop-stage", "5")
    assert out.returncode == 0, out.stderr
    assert "Stage 4: lang dirs exist, skipping" in out.stderr
    assert "Stage 5: LMs and graphs exist, skipping" in out.stderr
    assert hlg.stat().st_mtime_ns == before and time.time() - start < first_run


def test_stage_5_without_the_3gram_names_it(tmp_path):
    work = _recipes.make_recipe_dir(tmp_path, "librispeech")
    (work / "download" / "LibriSpeech").mkdir(parents=True)
    out = _recipes.run_prepare(work, "--stage", "5", "--stop-stage", "5")
    assert out.returncode != 0
    assert "download/lm/3-gram.pruned.1e-7.arpa not found" in out.stderr
