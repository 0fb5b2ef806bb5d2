"""H, HL and HLG built with kaldifst, searched with kaldi-decoder on hand-made posteriors."""

import kaldifst
import numpy as np
import pytest

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.search import GraphSearch
from hourglass_w2v2.lang.graphs import build_ctc_topo
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table


@pytest.fixture(scope="module")
def setup(toy_lang):
    tok = Tokenizer(toy_lang)
    words = {i: w for w, i in read_token_table(toy_lang / "words.txt").items()}
    graphs = {g: GraphSearch(load_graph(toy_lang / f"{g}.fst")) for g in ("H", "HL", "HLG")}
    return tok, words, graphs


def test_outputs_exist(toy_lang):
    for name in ("H.fst", "L.fst", "L_disambig.fst", "HL.fst", "HLG.fst"):
        assert (toy_lang / name).stat().st_size > 0, name
    assert (toy_lang.parent / "G_3_gram.fst.txt").stat().st_size > 0


@pytest.mark.parametrize("text", ["THE CAT SAT", "A DOG RAN FAST", "THE THEN AT"])
def test_clean_posteriors_give_the_words(setup, make_posteriors, text):
    tok, words, graphs = setup
    lp = make_posteriors(tok, tok.encode(text))
    assert tok.decode(graphs["H"].best_path(lp)) == text
    for g in ("HL", "HLG"):
        assert [words[i] for i in graphs[g].best_path(lp)] == text.split(), g


def test_repeated_unit_needs_a_blank(setup):
    """'A A' without a blank between the two A frames is one A in CTC: H must collapse it."""
    tok, _, graphs = setup
    a = tok.token_table["A"]
    lp = np.full((4, tok.vocab_size), -10.0, dtype=np.float32)
    lp[[0, 1, 2, 3], [a, a, a, 0]] = 0.0
    assert graphs["H"].best_path(lp) == [a]
    lp[1] = -10.0
    lp[1, 0] = 0.0  # A blank A blank
    assert graphs["H"].best_path(lp) == [a, a]


def test_h_best_path_is_framewise_argmax(setup):
    """H accepts every alignment, so its Viterbi path must be the greedy collapse."""
    tok, _, graphs = setup
    rng = np.random.default_rng(0)
    for _ in range(5):
        logits = rng.normal(size=(30, tok.vocab_size)).astype(np.float32) * 3
        lp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        best = lp.argmax(1)
        collapsed = [int(u) for i, u in enumerate(best) if u != 0 and (i == 0 or u != best[i - 1])]
        assert graphs["H"].best_path(lp) == collapsed


def test_lm_overrules_weak_acoustics(setup, make_posteriors):
    """Acoustics slightly prefer 'THE SAT' (never in the LM text); HLG must pick 'THE CAT'."""
    tok, words, graphs = setup
    lp = make_posteriors(tok, tok.encode("THE CAT"), floor=-30.0)
    c, s = tok.token_table["C"], tok.token_table["S"]
    rows = np.flatnonzero(lp[:, c] > -1)
    lp[rows, c], lp[rows, s] = np.log(0.45), np.log(0.55)
    assert [words[i] for i in graphs["HL"].best_path(lp)] == ["THE", "SAT"]
    assert [words[i] for i in graphs["HLG"].best_path(lp)] == ["THE", "CAT"]


def test_oov_and_unk_do_not_crash(setup, make_posteriors):
    """A word outside the LM ('ZOO' is only in the transcripts) and a <unk> unit still decode."""
    tok, words, graphs = setup
    lp = make_posteriors(tok, tok.encode("THE ZOO"))
    assert [words[i] for i in graphs["HL"].best_path(lp)] == ["THE", "ZOO"]
    hlg = [words[i] for i in graphs["HLG"].best_path(lp)]
    assert hlg[0] == "THE" and "ZOO" not in hlg  # G cannot output it; some LM word instead
    unk = make_posteriors(tok, tok.encode("THE") + [tok.token_table["▁"], tok.unk_id])
    assert [words[i] for i in graphs["HL"].best_path(unk)] == ["THE", "<UNK>"]
    assert all(
        w in read_token_table(tok.lang_dir / "words.txt")
        for w in [words[i] for i in graphs["HLG"].best_path(unk)]
    )


def test_ctc_topo_arcs():
    H = build_ctc_topo(4, num_disambig=2)
    arcs = {
        tuple(int(x) for x in line.split()[:4])
        for line in H.to_str().splitlines()
        if len(line.split()) >= 4
    }
    assert H.num_states == 4 and len(arcs) == 4 * 6  # blank + 3 units + 2 disambig loops
    assert (0, 0, 1, 0) in arcs  # blank: input 1 (unit 0 shifted), no output
    assert (1, 1, 2, 0) in arcs  # repeat of unit 1 is absorbed
    assert (1, 1, 2, 1) not in arcs  # ... and never output again without a blank
    assert (1, 2, 3, 2) in arcs  # a new unit is output
    assert (2, 0, 1, 0) in arcs
    assert (3, 3, 5, 4) in arcs  # #0 (unit id 4) passes through as input 5
    assert isinstance(H, kaldifst.StdVectorFst)
