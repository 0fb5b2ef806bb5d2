"""The k2 backend gives the kaldi-decoder backend's words (skipped when k2 is not installed)."""

import numpy as np
import pytest

from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.lang.tokenizer import Tokenizer

k2 = pytest.importorskip("k2")
pytestmark = pytest.mark.k2


def test_k2_1best_matches_kaldi(toy_lang, make_posteriors):
    import kaldifst

    from hourglass_w2v2.lang.graphs import fst_to_k2

    fst_to_k2(kaldifst.StdVectorFst.read(str(toy_lang / "HLG.fst")), toy_lang / "HLG.pt")
    tok = Tokenizer(toy_lang)
    kaldi = Decoder("1best", toy_lang, "HLG", lm_scales=[1.0], backend="kaldi")
    k2_dec = Decoder("1best", toy_lang, "HLG", lm_scales=[1.0], backend="k2")
    assert k2_dec.k2_graph is not None
    rng = np.random.default_rng(0)
    for text in ["THE CAT SAT", "A DOG RAN FAST", "THE DOG SAT THEN"]:
        lp = make_posteriors(tok, tok.encode(text), floor=-4.0)
        lp = lp + rng.normal(scale=0.5, size=lp.shape).astype(np.float32)
        assert k2_dec.decode(lp) == kaldi.decode(lp) == {"lm_scale_1": text.split()}


@pytest.mark.parametrize("method", ["nbest", "lm-rescore"])
def test_k2_lattice_methods_match_kaldi(toy_lang, make_posteriors, method):
    # k2's pruned lattice, converted, goes through the same n-best code as our search's
    import kaldifst

    from hourglass_w2v2.lang.graphs import fst_to_k2

    fst_to_k2(kaldifst.StdVectorFst.read(str(toy_lang / "HLG.fst")), toy_lang / "HLG.pt")
    tok = Tokenizer(toy_lang)
    extra = {"rescore_lm": toy_lang.parent / "G_4_gram.arpa"} if method == "lm-rescore" else {}
    kaldi = Decoder(method, toy_lang, "HLG", lm_scales=[0.5, 1.0], backend="kaldi", **extra)
    k2_dec = Decoder(method, toy_lang, "HLG", lm_scales=[0.5, 1.0], backend="k2", **extra)
    rng = np.random.default_rng(0)
    for text in ["THE CAT SAT", "A DOG RAN FAST"]:
        lp = make_posteriors(tok, tok.encode(text), floor=-4.0)
        lp = lp + rng.normal(scale=0.5, size=lp.shape).astype(np.float32)
        assert k2_dec.decode(lp) == kaldi.decode(lp)
