"""n-gram language models: train an ARPA file with ``arpabo``, read it, and turn it into ``G``.

LibriSpeech uses the official ARPA files; the synth recipe trains its own 3-gram with ``arpabo``
(Katz back-off with a fixed discount). arpabo writes every back-off weight as 1 (log10 0.0), which
leaves each history's discounted mass unused, so :func:`renormalize_backoffs` recomputes them the
way SRILM does, making every conditional distribution sum to one. ``G.fst.txt`` is made by
``kaldilm`` (Kaldi's ``arpa2fst``) with ``#0`` on the back-off arcs. :class:`NgramScorer` gives
sentence costs of an ARPA LM (kenlm or these readers) for n-best rescoring.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import arpabo
import kaldilm

from hourglass_w2v2.fileio import atomic_output, atomic_write_text
from hourglass_w2v2.lang.prepare import iter_text

NGrams = list[dict[tuple[str, ...], tuple[float, float]]]  # order-1 -> ngram -> (log10 p, bow)


def train_arpa(
    text_files: list[str | Path], order: int, out: str | Path, discount_mass: float = 0.5
) -> Path:
    """Train an ``order``-gram back-off LM on ``text_files`` and write it as ARPA to ``out``.

    Counting and discounting are arpabo's (Katz, fixed ``discount_mass``); the back-off weights
    are then renormalized (:func:`renormalize_backoffs`). The file is written to a temporary name
    and renamed, so an interrupted run leaves no truncated ARPA behind.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lm = arpabo.ArpaBoLM(
        max_order=order, smoothing_method="fixed", discount_mass=discount_mass, unicode_norm=False
    )
    num_lines = 0
    for path in text_files:
        for line in iter_text(path):
            lm.read_corpus_line(line)
            num_lines += 1
    if num_lines == 0:
        raise ValueError(f"no LM training text in {[str(p) for p in text_files]}")
    lm.compute()
    with atomic_output(out) as tmp:
        lm.write_file(str(tmp))
        ngrams = read_arpa(tmp)
        renormalize_backoffs(ngrams)
        write_arpa(ngrams, tmp)
    logging.info(
        "trained a %d-gram LM on %d sentences: %s -> %s",
        order,
        num_lines,
        ", ".join(f"{len(n)} {i + 1}-grams" for i, n in enumerate(ngrams)),
        out,
    )
    return out


def read_arpa(path: str | Path) -> NGrams:
    """Read an ARPA file into one dict per order mapping n-gram -> (log10 prob, log10 bow)."""
    ngrams: NGrams = []
    order = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                order = int(line[1:-7])
                while len(ngrams) < order:
                    ngrams.append({})
                continue
            if order == 0:
                continue
            parts = line.split()
            try:
                logp = float(parts[0])
                words = tuple(parts[1 : 1 + order])
                bow = float(parts[1 + order]) if len(parts) > 1 + order else 0.0
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{lineno}: bad {order}-gram line {line!r}") from None
            if len(words) != order:
                raise ValueError(f"{path}:{lineno}: bad {order}-gram line {line!r}")
            ngrams[order - 1][words] = (logp, bow)
    if not ngrams:
        raise ValueError(f"{path} has no n-gram sections; is it an ARPA file?")
    return ngrams


def write_arpa(ngrams: NGrams, path: str | Path) -> None:
    """Write n-grams in ARPA format (back-off weights only where a longer n-gram extends them)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for i, table in enumerate(ngrams):
            f.write(f"ngram {i + 1}={len(table)}\n")
        for i, table in enumerate(ngrams):
            f.write(f"\n\\{i + 1}-grams:\n")
            last = i + 1 == len(ngrams)
            for words, (logp, bow) in table.items():
                text = " ".join(words)
                f.write(f"{logp:.6f}\t{text}\n" if last else f"{logp:.6f}\t{text}\t{bow:.6f}\n")
        f.write("\n\\end\\\n")


def backoff_logprob(ngrams: NGrams, history: tuple[str, ...], word: str) -> float:
    """log10 P(word | history) of a back-off LM (history may be longer than the model order)."""
    max_history = len(ngrams) - 1
    history = history[len(history) - max_history :] if len(history) > max_history else history
    penalty = 0.0
    while True:
        entry = ngrams[len(history)].get((*history, word))
        if entry is not None:
            return penalty + entry[0]
        if not history:
            return -99.0  # out of vocabulary
        bow = ngrams[len(history) - 1].get(history)
        penalty += bow[1] if bow is not None else 0.0
        history = history[1:]


def renormalize_backoffs(ngrams: NGrams) -> None:
    """Set each history's back-off weight so that P(. | history) sums to one (in place).

    For a history h with seen successors S(h): bow(h) = (1 - sum_{w in S} P(w|h)) /
    (1 - sum_{w in S} P(w|h')), h' = h without its first word (Katz). Lower orders are done first
    because P(w|h') uses their weights. ``<s>`` is never predicted, so its unigram gets the
    conventional log-prob -99 and the other unigrams are rescaled to sum to one.
    """
    unigrams = ngrams[0]
    if ("<s>",) in unigrams:
        unigrams[("<s>",)] = (-99.0, unigrams[("<s>",)][1])
    log_total = math.log10(sum(10.0**p for w, (p, _) in unigrams.items() if w != ("<s>",)))
    for w, (p, bow) in unigrams.items():
        if w != ("<s>",):
            unigrams[w] = (p - log_total, bow)
    for order in range(1, len(ngrams)):  # histories of length `order`
        seen_mass: dict[tuple[str, ...], float] = defaultdict(float)
        lower_mass: dict[tuple[str, ...], float] = defaultdict(float)
        for words, (logp, _) in ngrams[order].items():
            h, w = words[:-1], words[-1]
            seen_mass[h] += 10.0**logp
            lower_mass[h] += 10.0 ** backoff_logprob(ngrams, h[1:], w)
        table = ngrams[order - 1]
        for h, (logp, _) in table.items():
            if h not in seen_mass:
                table[h] = (logp, 0.0)
                continue
            num = max(1.0 - seen_mass[h], 1e-6)
            den = max(1.0 - lower_mass[h], 1e-6)
            table[h] = (logp, math.log10(num / den))


def arpa_to_fst_txt(
    arpa: str | Path, words_txt: str | Path, out: str | Path, max_order: int = -1
) -> Path:
    """Convert an ARPA LM to Kaldi's ``G.fst`` text form with kaldilm, ``#0`` on back-off arcs.

    Words of the ARPA file that are missing from ``words.txt`` make kaldilm fail, so they are
    reported here first by name.
    """
    words = {line.split()[0] for line in Path(words_txt).read_text(encoding="utf-8").splitlines()}
    ngrams_vocab = set()
    with open(arpa, encoding="utf-8") as f:
        in_unigrams = False
        for line in f:
            line = line.strip()
            if line.startswith("\\"):
                in_unigrams = line == "\\1-grams:"
                continue
            if in_unigrams and line:
                ngrams_vocab.add(line.split()[1])
    missing = sorted(ngrams_vocab - words)
    if missing:
        raise ValueError(
            f"{len(missing)} words of {arpa} are not in {words_txt} (e.g. {missing[:5]}); "
            "rerun prepare_lang with the LM text as --words-text"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = kaldilm.arpa2fst(
        input_arpa=str(arpa),
        disambig_symbol="#0",
        read_symbol_table=str(words_txt),
        max_order=max_order,
    )
    atomic_write_text(out, text)
    logging.info("%s -> %s", arpa, out)
    return out


#: log10 -> natural log, the unit of graph costs
LN10 = math.log(10.0)


def _arpa_order(path: Path) -> int:
    """The highest order listed in an ARPA file's ``\\data\\`` header."""
    order = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("ngram ") and "=" in line:
                order = max(order, int(line[6:].split("=")[0]))
            elif line.endswith("-grams:"):
                break
    return order


class NgramScorer:
    """Sentence log-probabilities of an ARPA n-gram LM, for n-best rescoring.

    ``backend``: ``"kenlm"`` (the ``lm`` extra; what LibriSpeech's 4-gram needs, ~1.4 GB of
    ARPA), ``"python"`` (:func:`hourglass_w2v2.lang.lm.read_arpa` into dicts, fine for the synth
    LMs) or ``"auto"``: kenlm when it is installed and the LM is at least a bigram (kenlm's
    limit). Both give the same costs for in-vocabulary
    words (tested); an out-of-vocabulary word costs kenlm its ``<unk>`` probability and the
    Python reader log10 P = -99.
    """

    #: ARPA files above this size are not read into Python dicts (~100 bytes per n-gram)
    MAX_PYTHON_ARPA_BYTES = 200 * 1024**2

    def __init__(self, arpa: str | Path, backend: str = "auto") -> None:
        arpa = Path(arpa)
        if backend not in ("auto", "kenlm", "python"):
            raise ValueError(f"NgramScorer backend must be auto|kenlm|python, got {backend!r}")
        if not arpa.is_file():
            raise FileNotFoundError(f"rescoring LM {arpa} does not exist")
        kenlm = None
        if backend == "kenlm" or (backend == "auto" and _arpa_order(arpa) >= 2):
            try:
                import kenlm
            except ImportError:
                if backend == "kenlm":
                    raise ImportError(
                        "NgramScorer(backend='kenlm') needs kenlm: pip install -e '.[lm]'"
                    ) from None
        self._kenlm = None
        if kenlm is not None:
            self._kenlm = kenlm.Model(str(arpa))
        else:
            size = arpa.stat().st_size
            if size > self.MAX_PYTHON_ARPA_BYTES:
                raise RuntimeError(
                    f"rescoring LM {arpa} is {size / 1024**2:.0f} MB: too big to read into "
                    "Python (tens of GB of memory); install kenlm: pip install -e '.[lm]'"
                )
            self._ngrams = read_arpa(arpa)
        logging.info("loaded rescoring LM %s (%s)", arpa, "kenlm" if self._kenlm else "python")

    def cost(self, words: Sequence[str]) -> float:
        """``-ln P(<s> words </s>)``, the unit of graph costs."""
        if self._kenlm is not None:
            return -self._kenlm.score(" ".join(words), bos=True, eos=True) * LN10
        history: tuple[str, ...] = ("<s>",)
        log10p = 0.0
        for w in [*words, "</s>"]:
            log10p += backoff_logprob(self._ngrams, history, w)
            history = (*history, w)
        return -log10p * LN10
