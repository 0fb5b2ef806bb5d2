"""Perplexity as the corpus report computes it, and the grammar's n-gram structure."""

import random

import pytest

from hourglass_w2v2.data.synth.corpus import perplexity
from hourglass_w2v2.data.synth.grammar import SentenceGrammar, unique_sentences
from hourglass_w2v2.lang.lm import read_arpa, train_arpa

ARPA = """
\\data\\
ngram 1=4
ngram 2=2
ngram 3=1

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-0.5\tA\t-0.3
-0.7\tB

\\2-grams:
-0.2\t<s> A\t-0.05
-0.4\tA B

\\3-grams:
-0.1\t<s> A B

\\end\\
"""


def test_perplexity_by_hand_with_oov(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA)
    ngrams = read_arpa(tmp_path / "lm.arpa")
    # "A B": -0.2 (A|<s>) -0.1 (B|<s> A) -1.0 (</s>|A B -> </s>)  = -1.3
    # "B A": -1.2 (B|<s> -> bo(<s>) + B) -0.5 (A|<s> B -> A) -1.3 (</s>|B A -> bo(A) + </s>)
    # "A C B": -0.2, C is OOV, B|A C -> B = -0.7, </s>|C B -> </s> = -1.0; sum -1.9
    result = perplexity(ngrams, ["A B", "B A", "A C B"])
    assert result.num_oov == 1
    assert result.num_words == 9
    assert result.log10_prob == pytest.approx(-6.2)
    assert result.perplexity == pytest.approx(10 ** (6.2 / 9))


@pytest.fixture(scope="module")
def grammar_text():
    grammar = SentenceGrammar()
    rng = random.Random(0)
    used: set[str] = set()
    test = unique_sentences(grammar, rng, 200, used)
    train = unique_sentences(grammar, rng, 3000, used)
    return grammar, train, test


def _perplexities(tmp_path, train, test):
    (tmp_path / "train.txt").write_text("\n".join(train) + "\n")
    ppl = {}
    for order in (1, 3):
        train_arpa([tmp_path / "train.txt"], order, tmp_path / f"{order}.arpa")
        ppl[order] = perplexity(read_arpa(tmp_path / f"{order}.arpa"), test).perplexity
    return ppl


def test_grammar_has_structure_a_trigram_learns(grammar_text, tmp_path):
    grammar, train, test = grammar_text
    assert len(grammar.lex.vocabulary()) >= 1500
    assert not set(test) & set(train)
    ppl = _perplexities(tmp_path, train, test)
    # Control: the same words in random order within each sentence (no structure).
    rng = random.Random(1)
    shuffled = [" ".join(rng.sample(s.split(), len(s.split()))) for s in train + test]
    control = _perplexities(tmp_path, shuffled[: len(train)], shuffled[len(train) :])
    assert ppl[3] < 0.75 * ppl[1]  # measured: 305 vs 451 with 3,000 sentences
    assert control[3] > 0.9 * control[1]  # measured: 713 vs 451
