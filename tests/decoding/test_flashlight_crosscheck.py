"""1best-HL against torchaudio's flashlight lexicon decoder (no LM) on the same log-probs."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions
from hourglass_w2v2.lang.graphs import compile_graphs
from hourglass_w2v2.lang.prepare import prepare_lang
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table
from hourglass_w2v2.scoring import error_stats

decoder_mod = pytest.importorskip("torchaudio.models.decoder")

# the fake peaky CTC model of the decoding-speed benchmark
_spec = importlib.util.spec_from_file_location(
    "decode_speed", Path(__file__).parents[2] / "benchmarks" / "decode_speed.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def random_words(rng, n):
    letters = list("ABCDEFGHIKLMNOPRSTU")
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters, size=rng.integers(2, 6))))
    return sorted(words)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = random_words(rng, 60)
    sentences = [" ".join(rng.choice(words, size=rng.integers(3, 8))) for _ in range(60)]
    root = tmp_path_factory.mktemp("fl")
    (root / "text.txt").write_text("\n".join(sentences) + "\n")
    lang = root / "lang_char"
    prepare_lang([root / "text.txt"], lang, "char")
    compile_graphs(lang)  # no LM: H, L, HL
    tok = Tokenizer(lang)
    data = [
        (s.split(), bench.peaky_log_probs(rng, tok.encode(s), tok.vocab_size)) for s in sentences
    ]
    return lang, tok, data


def test_1best_hl_matches_flashlight(setup):
    lang, tok, data = setup
    words = {i: w for w, i in read_token_table(lang / "words.txt").items()}
    # equal beams: 20 (log-prob units) in both
    search = GraphSearch(load_graph(lang / "HL.fst"), SearchOptions(beam=20.0, max_active=10000))
    fl = bench.flashlight_decoder(lang, lang.parent, arpa=None, beam=20.0)
    ours, theirs, greedy = [], [], []
    for i, (ref, lp) in enumerate(data):
        ours.append((str(i), ref, [words[o] for o in search.best_path(lp)]))
        theirs.append((str(i), ref, list(fl(torch.from_numpy(lp)[None])[0][0].words)))
        best = lp.argmax(1)
        ids = [int(u) for t, u in enumerate(best) if u != 0 and (t == 0 or u != best[t - 1])]
        greedy.append((str(i), ref, tok.decode(ids).split()))
    wer_ours = error_stats(ours)[0].error_rate
    wer_fl = error_stats(theirs)[0].error_rate
    wer_greedy = error_stats(greedy)[0].error_rate
    print(f"WER 1best-HL {wer_ours:.2f}, flashlight {wer_fl:.2f}, greedy {wer_greedy:.2f}")
    assert abs(wer_ours - wer_fl) <= 0.5, (wer_ours, wer_fl)
    # the data must be able to tell decoders apart: greedy fails on most words, the lexicon
    # search fixes most of them but not all
    assert wer_greedy > 50 and 0 < wer_ours < 15, (wer_greedy, wer_ours)
