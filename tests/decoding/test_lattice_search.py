"""The numpy lattice search behind nbest / lm-rescore: bounded work on flat posteriors, and
rescoring with a better LM helping where the right answer is known."""

import time

import kaldialign
import numpy as np
import pytest

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.lattice import lattice_best_path
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions
from hourglass_w2v2.lang.lm import train_arpa
from hourglass_w2v2.lang.tokenizer import Tokenizer

SENTENCES = [
    "THE CAT SAT",
    "THE DOG SAT",
    "A CAT RAN",
    "THE CAT RAN FAST",
    "THE DOG RAN",
    "A DOG SAT THEN",
    "THE CAT SAT THEN",
    "AT THE CAT",
    "THE DOG RAN",
    "A CAT RAN",
]


def weak_posteriors(tok, text, rng, frames=150, peak=2.0, noise=1.0):
    """``frames`` (3 s at 20 ms) of log-probs where the right unit is only ``peak`` above noise.

    Units take equal shares of the frames, each followed by a blank run; every other unit gets
    Gaussian noise, so a weak model's near-flat output is imitated.
    """
    units = tok.encode(text)
    seq = np.zeros(frames, dtype=np.int64)
    bounds = np.linspace(0, frames, len(units) + 1).astype(int)
    for u, a, b in zip(units, bounds[:-1], bounds[1:], strict=True):
        seq[a : a + max(1, (b - a) * 2 // 3)] = u
    lp = rng.normal(scale=noise, size=(frames, tok.vocab_size))
    lp[np.arange(frames), seq] += peak
    lp -= np.logaddexp.reduce(lp, axis=1, keepdims=True)
    return lp.astype(np.float32)


def wer(refs, hyps):
    errors = sum(
        kaldialign.edit_distance(r.split(), h)["total"] for r, h in zip(refs, hyps, strict=True)
    )
    return errors / sum(len(r.split()) for r in refs)


@pytest.fixture(scope="module")
def utterances(toy_lang):
    tok = Tokenizer(toy_lang)
    rng = np.random.default_rng(0)
    return [weak_posteriors(tok, s, rng) for s in SENTENCES]


@pytest.mark.parametrize("method", ["nbest", "lm-rescore"])
def test_flat_posteriors_decode_with_bounded_search(toy_lang, utterances, method):
    # beam 16 with no max-active took minutes per utterance here (LatticeSimpleDecoder)
    d = Decoder(
        method,
        toy_lang,
        "HLG",
        SearchOptions(beam=16.0, max_active=200, lattice_beam=8.0),
        lm_scales=[0.6, 1.0, 1.5],
        num_paths=50,
        rescore_lm=toy_lang.parent / "G_4_gram.arpa",
    )
    # Bounded by max-active (see test_max_active_bounds_the_search...); the speed itself is
    # measured by benchmarks/decode_speed.py, not asserted by a timed test.
    outs = [d.decode(lp) for lp in utterances]
    assert all(set(o) == {"lm_scale_0.6", "lm_scale_1", "lm_scale_1.5"} for o in outs)
    words = {w for line in SENTENCES for w in line.split()}
    assert all(o["lm_scale_1"] and set(o["lm_scale_1"]) <= words for o in outs)
    if method == "lm-rescore":
        assert wer(SENTENCES, [o["lm_scale_1"] for o in outs]) < 0.5


def test_scores_equal_brute_force_over_all_paths(toy_lang):
    """Viterbi cost, its graph cost and the log-sum of every word sequence of a small lattice,
    against enumerating all of its paths."""
    from hourglass_w2v2.decoding.lattice import LatticeArrays

    tok = Tokenizer(toy_lang)
    search = GraphSearch(
        load_graph(toy_lang / "HLG.fst"), SearchOptions(beam=10, max_active=100, lattice_beam=4)
    )
    lp = weak_posteriors(tok, "THE CAT", np.random.default_rng(1), frames=12)
    arrays = LatticeArrays(search.lattice(lp))
    out_arcs: dict[int, list[int]] = {}
    for i, s in enumerate(arrays.src.tolist()):
        out_arcs.setdefault(s, []).append(i)
    paths: dict[tuple[int, ...], list[tuple[float, float]]] = {}

    def walk(state, words, graph, acoustic):
        if np.isfinite(arrays.final_graph[state]):
            paths.setdefault(tuple(words), []).append(
                (graph + arrays.final_graph[state], acoustic + arrays.final_acoustic[state])
            )
        for i in out_arcs.get(state, []):
            w = [arrays.olabel[i]] if arrays.olabel[i] else []
            walk(arrays.dst[i], words + w, graph + arrays.graph[i], acoustic + arrays.acoustic[i])

    walk(arrays.start, [], 0.0, 0.0)
    hyps = list(paths)
    assert len(hyps) >= 3
    viterbi, graph, logsum = arrays.score(hyps, [0.5, 2.0])
    for i, h in enumerate(hyps):
        for j, scale in enumerate([0.5, 2.0]):
            totals = np.array([scale * g + a for g, a in paths[h]])
            assert viterbi[i, j] == pytest.approx(totals.min(), abs=1e-6)
            assert graph[i, j] == pytest.approx(paths[h][totals.argmin()][0], abs=1e-6)
            assert logsum[i, j] == pytest.approx(-np.logaddexp.reduce(-totals), abs=1e-6)


def test_max_active_bounds_the_search_and_keeps_the_best_path(toy_lang, utterances):
    graph = load_graph(toy_lang / "HLG.fst")
    wide = GraphSearch(graph, SearchOptions(beam=16.0, max_active=10**6, lattice_beam=4.0))
    narrow = GraphSearch(graph, SearchOptions(beam=16.0, max_active=50, lattice_beam=4.0))
    for lp in utterances[:3]:
        # the unbounded lattice search agrees with kaldi-decoder's FasterDecoder
        assert lattice_best_path(wide.lattice(lp), 1.0) == wide.best_path(lp, 1.0)
        small, big = narrow.lattice(lp), wide.lattice(lp)
        assert small.num_states < big.num_states
        assert lattice_best_path(small, 1.0) == lattice_best_path(big, 1.0)


def test_nbest_extraction_grows_linearly_with_num_paths(toy_lang, utterances):
    from hourglass_w2v2.decoding.lattice import lattice_nbest

    search = GraphSearch(load_graph(toy_lang / "HLG.fst"), SearchOptions(lattice_beam=10.0))
    lattices = [search.lattice(lp) for lp in utterances[:4]]
    seconds = {}
    for n in (10, 100):
        start = time.perf_counter()
        hyps = [lattice_nbest(lat, n) for lat in lattices]
        seconds[n] = time.perf_counter() - start
    assert max(len(h) for h in hyps) > 20  # the wide lattice really holds many word sequences
    assert seconds[100] < 20 * seconds[10]


def c_sounds_like_s(tok, text, floor=-30.0):
    """Clean posteriors of ``text`` except that every C is acoustically 70 % S, 30 % C."""
    units = tok.encode(text)
    seq = []
    for u in units:
        seq += [u, u, 0]
    lp = np.full((len(seq), tok.vocab_size), floor)
    lp[np.arange(len(seq)), seq] = 0.0
    c, s = tok.token_table["C"], tok.token_table["S"]
    rows = np.flatnonzero(lp[:, c] == 0.0)
    lp[rows, c], lp[rows, s] = np.log(0.3), np.log(0.7)
    return (lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)).astype(np.float32)


def test_better_lm_does_not_hurt_rescoring(toy_lang, utterances, tmp_path):
    """Rescoring with the 4-gram of the sentences' own text never loses to a unigram LM of
    the same words, and wins where the acoustics prefer a word sequence the 4-gram rules out
    (CAT heard as SAT: the unigram prefers CAT by ln 6/4 = 0.4 nats, the acoustics SAT by
    2 ln 7/3 = 1.7; the 4-gram has never seen THE SAT SAT)."""
    tok = Tokenizer(toy_lang)
    unigram = train_arpa([toy_lang.parent / "lm.txt"], 1, tmp_path / "G_1_gram.arpa")
    confusable = ["THE CAT SAT", "A CAT RAN", "THE CAT SAT THEN"]
    hard = [c_sounds_like_s(tok, t) for t in confusable]
    opts = SearchOptions(beam=16.0, max_active=200, lattice_beam=8.0)
    hyps, hard_hyps = {}, {}
    for name, arpa in (("unigram", unigram), ("4-gram", toy_lang.parent / "G_4_gram.arpa")):
        d = Decoder("lm-rescore", toy_lang, "HLG", opts, [1.0], 50, arpa)
        hyps[name] = [d.decode(lp)["lm_scale_1"] for lp in utterances]
        hard_hyps[name] = [d.decode(lp)["lm_scale_1"] for lp in hard]
    assert wer(SENTENCES, hyps["4-gram"]) <= wer(SENTENCES, hyps["unigram"])
    assert hard_hyps["4-gram"] == [t.split() for t in confusable]
    assert hard_hyps["unigram"] == [t.replace("CAT", "SAT").split() for t in confusable]
