"""Decoding methods over the toy lang dir: keys, LM-scale sweeps, n-best and 4-gram rescoring."""

import numpy as np
import pytest

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.lattice import lattice_best_path, lattice_nbest
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.decoding.search import GraphSearch
from hourglass_w2v2.lang.lm import NgramScorer, read_arpa
from hourglass_w2v2.lang.tokenizer import Tokenizer


def ambiguous(tok, make_posteriors):
    """'THE CAT' whose C is acoustically a bit more like S ('THE SAT' is not in the LM)."""
    lp = make_posteriors(tok, tok.encode("THE CAT"), floor=-30.0)
    c, s = tok.token_table["C"], tok.token_table["S"]
    rows = np.flatnonzero(lp[:, c] > -1)
    lp[rows, c], lp[rows, s] = np.log(0.3), np.log(0.7)
    return lp


def test_keys_and_names(toy_lang):
    assert Decoder("ctc-greedy", toy_lang).keys() == ["greedy"]
    d = Decoder("1best", toy_lang, "HLG", lm_scales=[0.5, 1.0])
    assert d.name == "1best-HLG" and d.keys() == ["lm_scale_0.5", "lm_scale_1"]
    assert Decoder("1best", toy_lang, "HL", lm_scales=[0.5, 1.0]).keys() == ["no_lm"]


def test_greedy_and_graphs_on_clean_input(toy_lang, make_posteriors):
    tok = Tokenizer(toy_lang)
    lp = make_posteriors(tok, tok.encode("A DOG RAN"))
    for method, graph in [
        ("ctc-greedy", "H"),
        ("1best", "H"),
        ("1best", "HL"),
        ("1best", "HLG"),
        ("nbest", "HLG"),
    ]:
        out = Decoder(method, toy_lang, graph, lm_scales=[0.8, 1.2]).decode(lp)
        assert all(words == ["A", "DOG", "RAN"] for words in out.values()), (method, graph, out)


def test_lm_scale_sweep_moves_from_acoustics_to_lm(toy_lang, make_posteriors):
    tok = Tokenizer(toy_lang)
    lp = ambiguous(tok, make_posteriors)
    out = Decoder("1best", toy_lang, "HLG", lm_scales=[0.01, 3.0]).decode(lp)
    assert out["lm_scale_0.01"] == ["THE", "SAT"] and out["lm_scale_3"] == ["THE", "CAT"]


def test_lattice_sweep_equals_one_search_per_scale(toy_lang):
    """Rescaling the lattice must give what a fresh search at that scale gives."""
    tok = Tokenizer(toy_lang)
    search = GraphSearch(load_graph(toy_lang / "HLG.fst"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        units = tok.encode("THE CAT SAT THEN")
        lp = np.full((len(units) * 2, tok.vocab_size), -6.0, dtype=np.float32)
        lp[np.arange(0, len(lp), 2), units] = 0.0
        lp[np.arange(1, len(lp), 2), 0] = 0.0
        lp += rng.normal(scale=2.0, size=lp.shape).astype(np.float32)
        lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
        lattice = search.lattice(lp)
        for scale in (0.3, 1.0, 2.0):
            assert lattice_best_path(lattice, scale) == search.best_path(lp, scale)


def test_nbest_lists_distinct_sequences_best_first(toy_lang, make_posteriors):
    tok = Tokenizer(toy_lang)
    search = GraphSearch(load_graph(toy_lang / "HLG.fst"))
    hyps = lattice_nbest(search.lattice(ambiguous(tok, make_posteriors)), num_paths=5)
    assert len(hyps) >= 2
    assert len({tuple(h.olabels) for h in hyps}) == len(hyps)
    totals = [h.total_cost(1.0) for h in hyps]
    assert totals == sorted(totals)
    assert all(h.logsum_cost <= h.total_cost(1.0) + 1e-4 for h in hyps)


def test_lm_rescore_with_4gram(toy_lang, make_posteriors):
    tok = Tokenizer(toy_lang)
    arpa4 = toy_lang.parent / "G_4_gram.arpa"
    d = Decoder("lm-rescore", toy_lang, "HLG", lm_scales=[0.01, 5.0], rescore_lm=arpa4)
    out = d.decode(ambiguous(tok, make_posteriors))
    # the 4-gram prefers THE CAT by 0.48 nats, the acoustics THE SAT by 2 ln(7/3) = 1.69
    assert out["lm_scale_0.01"] == ["THE", "SAT"] and out["lm_scale_5"] == ["THE", "CAT"]
    # the scorer's sentence cost is -ln of the ARPA chain rule (all n-grams seen here)
    ngrams = read_arpa(arpa4)
    log10p = (
        ngrams[1][("<s>", "THE")][0]
        + ngrams[2][("<s>", "THE", "CAT")][0]
        + ngrams[3][("<s>", "THE", "CAT", "SAT")][0]
        + ngrams[3][("THE", "CAT", "SAT", "</s>")][0]
    )
    assert NgramScorer(arpa4).cost(["THE", "CAT", "SAT"]) == pytest.approx(-log10p * np.log(10))


@pytest.mark.parametrize("order", [3, 4])
def test_python_arpa_costs_equal_kenlm(toy_lang, order):
    # kenlm (a dev dependency) is the independent reference for the ARPA reader; the sentences
    # mix seen n-grams with back-offs to every lower order
    pytest.importorskip("kenlm", reason="kenlm is a dev dependency: pip install -e '.[dev]'")
    arpa = toy_lang.parent / f"G_{order}_gram.arpa"
    ref, ours = NgramScorer(arpa, backend="kenlm"), NgramScorer(arpa, backend="python")
    sentences = [
        ["THE", "CAT", "SAT"],
        ["DOG", "CAT", "A", "THEN", "FAST"],
        ["AT", "THE", "DOG", "RAN", "FAST", "THEN"],
        ["A"],
        [],
    ]
    costs = [ours.cost(s) for s in sentences]
    assert costs == pytest.approx([ref.cost(s) for s in sentences], rel=1e-5)
    assert len(set(costs)) == len(costs) and all(c > 0 for c in costs)


def test_a_huge_arpa_without_kenlm_is_refused_by_name(tmp_path, monkeypatch):
    arpa = tmp_path / "4-gram.arpa"
    arpa.write_text("\\data\\\nngram 1=1\n")
    monkeypatch.setattr(NgramScorer, "MAX_PYTHON_ARPA_BYTES", 8)
    with pytest.raises(RuntimeError, match="4-gram.arpa is .* install kenlm"):
        NgramScorer(arpa, backend="python")
    with pytest.raises(ValueError, match="auto\\|kenlm\\|python"):
        NgramScorer(arpa, backend="srilm")


def test_bad_arguments(toy_lang):
    with pytest.raises(ValueError, match="unknown decoding method"):
        Decoder("beam", toy_lang)
    with pytest.raises(ValueError, match="--rescore-lm"):
        Decoder("lm-rescore", toy_lang, "HLG")
    with pytest.raises(ValueError, match="word output"):
        Decoder("nbest", toy_lang, "H")
    with pytest.raises(ValueError, match="do not match"):
        Decoder("ctc-greedy", toy_lang).decode(np.zeros((5, 3), dtype=np.float32))


def test_empty_input_gives_no_words(toy_lang):
    tok = Tokenizer(toy_lang)
    empty = np.zeros((0, tok.vocab_size), dtype=np.float32)
    for method in ("ctc-greedy", "1best", "nbest"):
        assert all(w == [] for w in Decoder(method, toy_lang, "HLG").decode(empty).values())
