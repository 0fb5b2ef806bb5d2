"""n-gram LM training (arpabo + renormalized back-offs) and ARPA -> G with kaldilm."""

import itertools
import math

import pytest

from hourglass_w2v2.bin import train_lm as train_lm_cli
from hourglass_w2v2.lang.lm import arpa_to_fst_txt, backoff_logprob, read_arpa

TEXT = ["THE CAT SAT", "THE DOG SAT", "A CAT RAN", "THE CAT RAN FAST", "A DOG SAT DOWN"]


@pytest.fixture
def arpa(tmp_path):
    (tmp_path / "text.txt").write_text("\n".join(TEXT) + "\n")
    out = tmp_path / "G_3_gram.arpa"
    train_lm_cli.main(["--text", str(tmp_path / "text.txt"), "--order", "3", "--out", str(out)])
    return out


def test_every_history_sums_to_one(arpa):
    """With the renormalized back-off weights P(.|h) is a distribution for any history."""
    ngrams = read_arpa(arpa)
    assert len(ngrams) == 3
    vocab = [w[0] for w in ngrams[0] if w[0] != "<s>"]
    histories = [("<s>",), ("THE",), ("<s>", "THE"), ("THE", "CAT"), ("CAT", "RAN"), ("DOG", "A")]
    for h in histories:
        total = sum(10 ** backoff_logprob(ngrams, h, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-3), h


def test_seen_continuation_beats_unseen(arpa):
    ngrams = read_arpa(arpa)
    assert backoff_logprob(ngrams, ("<s>", "THE"), "CAT") > backoff_logprob(
        ngrams, ("<s>", "THE"), "FAST"
    )


def test_g_fst_has_backoff_disambig(arpa, tmp_path):
    words = ["<eps>", "<UNK>", *sorted({w for s in TEXT for w in s.split()}), "#0", "<s>", "</s>"]
    (tmp_path / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(words)))
    g = arpa_to_fst_txt(arpa, tmp_path / "words.txt", tmp_path / "G.fst.txt")
    arcs = [line.split() for line in g.read_text().splitlines() if len(line.split()) >= 4]
    ids = {w: i for i, w in enumerate(words)}
    assert any(a[2] == str(ids["#0"]) and a[3] == "0" for a in arcs)  # back-off arcs
    # weights are -ln P: some arc reading CAT carries the unigram cost of the ARPA file
    unigram_cost = -read_arpa(arpa)[0][("CAT",)][0] * math.log(10)
    cat_costs = [float(a[4]) for a in arcs if a[2] == str(ids["CAT"]) and len(a) == 5]
    assert min(abs(c - unigram_cost) for c in cat_costs) < 1e-3


def test_words_missing_from_words_txt_are_named(arpa, tmp_path):
    (tmp_path / "words.txt").write_text("<eps> 0\nTHE 1\n#0 2\n<s> 3\n</s> 4\n")
    with pytest.raises(ValueError, match="CAT"):
        arpa_to_fst_txt(arpa, tmp_path / "words.txt", tmp_path / "G.fst.txt")


def test_empty_text_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="no LM training text"):
        train_lm_cli.main(["--text", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "x")])


def test_order_is_respected(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(TEXT) + "\n")
    train_lm_cli.main(
        ["--text", str(tmp_path / "t.txt"), "--order", "4", "--out", str(tmp_path / "g4.arpa")]
    )
    ngrams = read_arpa(tmp_path / "g4.arpa")
    assert len(ngrams) == 4 and ("<s>", "THE", "CAT", "SAT") in ngrams[3]
    assert not list(itertools.islice((k for k in ngrams[3] if len(k) != 4), 1))
