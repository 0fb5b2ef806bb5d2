"""k2's lattice, as arrays, becomes the kaldi backend's lattice with the same n-best (no k2 needed).

A lattice of our own search is rewritten the way k2's ``intersect_dense_pruned`` would hold it
(start 0, one final state reached by label -1, units not shifted, scores = -costs, graph scores
apart) and converted back with :func:`k2_arcs_to_lattice`: every n-best result must be the same.
"""

import numpy as np
import pytest

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.k2_backend import k2_arcs_to_lattice
from hourglass_w2v2.decoding.lattice import lattice_best_path, lattice_nbest
from hourglass_w2v2.decoding.search import GraphSearch
from hourglass_w2v2.lang.tokenizer import Tokenizer


def kaldi_to_k2_arrays(lattice):
    """The arcs of a raw kaldifst lattice in k2's form (what ``k2_backend.lattice`` reads)."""
    arcs, finals = [], []
    for line in lattice.to_str().splitlines():
        p = line.split()
        if len(p) >= 4:
            g, a = (float(x) for x in (p[4].split(",") if len(p) > 4 else ("0", "0")))
            arcs.append((int(p[0]), int(p[1]), int(p[2]), int(p[3]), g, a))
        elif p:
            g, a = (float(x) for x in (p[1].split(",") if len(p) > 1 else ("0", "0")))
            finals.append((int(p[0]), g, a))
    final = 1 + max(max(a[0], a[1]) for a in arcs)
    src, dst, label, words, scores, graph_scores = [], [], [], [], [], []
    for s, d, i, o, g, a in arcs:
        src.append(s), dst.append(d), label.append(i - 1), words.append([o])
        scores.append(-(g + a)), graph_scores.append(-g)
    for s, g, a in finals:
        src.append(s), dst.append(final), label.append(-1), words.append([-1])
        scores.append(-(g + a)), graph_scores.append(-g)
    return src, dst, label, words, scores, graph_scores


@pytest.fixture(scope="module")
def kaldi_lattice(toy_lang, make_posteriors):
    tok = Tokenizer(toy_lang)
    rng = np.random.default_rng(0)
    lp = make_posteriors(tok, tok.encode("THE CAT SAT"), floor=-3.0)
    lp = (lp + rng.normal(scale=1.0, size=lp.shape)).astype(np.float32)
    lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
    return GraphSearch(load_graph(toy_lang / "HLG.fst")).lattice(lp)


def test_k2_form_converts_back_to_the_same_nbest(kaldi_lattice):
    arrays = kaldi_to_k2_arrays(kaldi_lattice)
    assert len(arrays[0]) > 20  # a real lattice with alternatives, not one path
    lat = k2_arcs_to_lattice(*arrays)
    for scale in (0.5, 1.0, 2.0):
        assert lattice_best_path(lat, scale) == lattice_best_path(kaldi_lattice, scale)
    ours, ref = lattice_nbest(lat, 20), lattice_nbest(kaldi_lattice, 20)
    assert len(ref) > 1
    assert [h.olabels for h in ours] == [h.olabels for h in ref]
    for h, r in zip(ours, ref, strict=True):
        assert h.graph_cost == pytest.approx(r.graph_cost, abs=1e-4)
        assert h.acoustic_cost == pytest.approx(r.acoustic_cost, abs=1e-4)
        assert h.logsum_cost == pytest.approx(r.logsum_cost, abs=1e-4)


def test_an_arc_with_two_words_becomes_a_chain_with_its_costs_once():
    # 0 -(unit 3: words 7 8)-> 1 -(unit 4: word 9)-> 2 -(-1)-> 3; scores are log-probs
    lat = k2_arcs_to_lattice(
        src=[0, 1, 2],
        dst=[1, 2, 3],
        label=[3, 4, -1],
        words=[[7, 8], [9], [-1]],
        scores=[-1.5, -0.5, 0.0],
        graph_scores=[-1.0, -0.25, 0.0],
    )
    (hyp,) = lattice_nbest(lat, 5)
    assert hyp.olabels == [7, 8, 9]
    assert hyp.graph_cost == pytest.approx(1.25)
    assert hyp.acoustic_cost == pytest.approx(0.75)


def test_an_empty_k2_lattice_is_none():
    assert k2_arcs_to_lattice([], [], [], [], [], []) is None
