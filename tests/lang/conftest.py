"""A toy char lang dir with a 3-gram HLG, for the lang tests and (imported) the decoding tests."""

from pathlib import Path

import numpy as np
import pytest

from hourglass_w2v2.lang.graphs import compile_graphs
from hourglass_w2v2.lang.lm import train_arpa
from hourglass_w2v2.lang.prepare import prepare_lang
from hourglass_w2v2.lang.tokenizer import Tokenizer

# The LM knows "THE CAT"; "THE SAT" never occurs, so G should overrule weak acoustics there.
LM_TEXT = """THE CAT SAT
THE DOG SAT
A CAT RAN
THE CAT RAN FAST
THE DOG RAN
A DOG SAT THEN
THE CAT SAT THEN
AT THE CAT
"""


@pytest.fixture(scope="session")
def toy_lang(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    (root / "lm.txt").write_text(LM_TEXT)
    # "ZOO" is in the lexicon (from the transcripts) but not in the LM text
    (root / "transcripts.txt").write_text(LM_TEXT + "THE ZOO\n")
    lang = root / "lang_char"
    prepare_lang([root / "transcripts.txt"], lang, "char", words_text_files=[root / "lm.txt"])
    train_arpa([root / "lm.txt"], 3, root / "G_3_gram.arpa")
    train_arpa([root / "lm.txt"], 4, root / "G_4_gram.arpa")
    compile_graphs(lang, root / "G_3_gram.arpa")
    return lang


def _posteriors(
    tok: Tokenizer, units: list[int], frames: int = 2, floor: float = -8.0
) -> np.ndarray:
    """Log-probs peaked on ``units`` (``frames`` each) with a blank frame after every unit."""
    seq = []
    for u in units:
        seq += [u] * frames + [0]
    lp = np.full((len(seq), tok.vocab_size), floor, dtype=np.float32)
    lp[np.arange(len(seq)), seq] = 0.0
    return lp - np.logaddexp.reduce(lp, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def make_posteriors():
    return _posteriors
