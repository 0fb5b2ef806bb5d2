"""Decoding graphs H, L, HL and HLG with kaldifst (prepare.sh stage 5).

The graphs follow the convention of kaldi-decoder's ``DecodableCtc``: an input label ``i`` reads
column ``i - 1`` of the log-prob matrix, so the CTC blank (unit 0) is input label 1 and input
label 0 stays epsilon (no frame consumed). Output labels of ``H`` are unit ids, of ``HL`` and
``HLG`` word ids of ``words.txt``.

- ``H``: the standard CTC topology: one state per unit (state 0 = "after blank"), repeats of the
  last unit are absorbed by a self-loop, a new unit is output when it differs from the last one
  or follows a blank. Every state is final.
- ``L`` / ``L_disambig``: the lexicon as a loop over words, no optional silence (CTC units carry
  the word boundary in ``▁``). ``L_disambig`` spells with ``#k`` and passes the LM's ``#0``.
- ``HL = remove_disambig(min(det(H o L_disambig')))`` (L' without the ``#0`` loop, as HL has no G),
  ``HLG = remove_disambig(min(det(H o min(det(L_disambig o G)))))``, arc-sorted, as Kaldi makes
  HCLG: determinize while the disambiguation symbols still make the transducer functional,
  then map them to epsilon.
Disambiguation units ``#k`` get ids ``vocab_size + k`` (they are not CTC outputs, so they are not
in ``tokens.txt``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import kaldifst

if TYPE_CHECKING:
    import k2

from hourglass_w2v2.fileio import atomic_output, atomic_save
from hourglass_w2v2.lang.lm import arpa_to_fst_txt
from hourglass_w2v2.lang.prepare import Lexicon, read_lexicon
from hourglass_w2v2.lang.tokenizer import read_token_table


def _compile(arcs: list[str], finals: list[str]) -> kaldifst.StdVectorFst:
    return kaldifst.compile("\n".join(arcs + finals) + "\n", acceptor=False)


def build_ctc_topo(vocab_size: int, num_disambig: int = 0) -> kaldifst.StdVectorFst:
    """The standard CTC topology ``H`` over units ``0..vocab_size-1`` (0 = blank).

    With ``num_disambig`` > 0 every state also gets self-loops ``#k+1 : #k`` for the
    disambiguation units ``#0..#num_disambig-1`` (ids ``vocab_size + k``), needed to compose
    with ``L_disambig``.
    """
    arcs: list[str] = []
    for s in range(vocab_size):
        arcs.append(f"{s} 0 1 0")  # blank
        for j in range(1, vocab_size):
            arcs.append(f"{s} {j} {j + 1} 0" if j == s else f"{s} {j} {j + 1} {j}")
        for k in range(num_disambig):
            d = vocab_size + k
            arcs.append(f"{s} {s} {d + 1} {d}")
    finals = [str(s) for s in range(vocab_size)]
    fst = _compile(arcs, finals)
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def build_lexicon_fst(
    lexicon: Lexicon,
    token_table: dict[str, int],
    word_table: dict[str, int],
    disambig: bool = False,
    pass_backoff: bool = True,
) -> kaldifst.StdVectorFst:
    """Lexicon transducer units -> words: a loop at state 0, one path per (word, spelling).

    With ``disambig`` the spellings may end in ``#k`` and, with ``pass_backoff``, state 0 gets
    the self-loop ``#0 : #0`` that passes G's back-off symbol through (not wanted in ``HL``,
    which has no G to consume it). Unknown units raise naming the word.
    """
    vocab_size = len(token_table)

    def unit_id(word: str, unit: str) -> int:
        if unit.startswith("#") and unit[1:].isdigit():
            if not disambig:
                raise ValueError(f"word {word!r}: disambiguation symbol {unit} in a plain lexicon")
            return vocab_size + int(unit[1:])
        if unit not in token_table:
            raise ValueError(f"word {word!r} is spelled with unit {unit!r} not in tokens.txt")
        return token_table[unit]

    arcs: list[str] = []
    next_state = 1
    for word, spelling in lexicon:
        if word not in word_table:
            raise ValueError(f"lexicon word {word!r} is not in words.txt")
        ids = [unit_id(word, u) for u in spelling]
        src = 0
        for i, unit in enumerate(ids):
            dst = 0 if i == len(ids) - 1 else next_state
            if dst:
                next_state += 1
            arcs.append(f"{src} {dst} {unit} {word_table[word] if i == 0 else 0}")
            src = dst
    if disambig and pass_backoff:
        arcs.append(f"0 0 {vocab_size} {word_table['#0']}")
    fst = _compile(arcs, ["0"])
    kaldifst.arcsort(fst, sort_type="ilabel")
    return fst


def remove_disambig(
    fst: kaldifst.StdVectorFst, first_disambig_ilabel: int
) -> kaldifst.StdVectorFst:
    """Return ``fst`` with input labels ``>= first_disambig_ilabel`` replaced by epsilon."""
    lines = []
    for line in fst.to_str(show_weight_one=False).splitlines():
        parts = line.split()
        if len(parts) >= 4 and int(parts[2]) >= first_disambig_ilabel:
            parts[2] = "0"
        lines.append(" ".join(parts))
    return kaldifst.compile("\n".join(lines) + "\n", acceptor=False)


def _optimize(fst: kaldifst.StdVectorFst, name: str) -> None:
    start = time.time()
    kaldifst.determinize_star(fst)
    kaldifst.minimize_encoded(fst)
    logging.info(
        "%s: determinized and minimized in %.1f s: %d states, %d arcs",
        name,
        time.time() - start,
        fst.num_states,
        _num_arcs(fst),
    )


def _num_arcs(fst: kaldifst.StdVectorFst) -> int:
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


def _write(fst: kaldifst.StdVectorFst, path: Path) -> None:
    with atomic_output(path) as tmp:
        if not fst.write(str(tmp)):
            raise OSError(f"could not write {path} (kaldifst failed on {tmp}): check free space")
    logging.info("wrote %s (%d states, %d arcs)", path, fst.num_states, _num_arcs(fst))


def max_disambig_of(lexicon_disambig: Lexicon) -> int:
    """Highest ``k`` of the ``#k`` symbols in a disambiguated lexicon (0 if none)."""
    ks = [int(u[1:]) for _, p in lexicon_disambig for u in p if u.startswith("#")]
    return max(ks, default=0)


def _compose_with_h(
    H: kaldifst.StdVectorFst, right: kaldifst.StdVectorFst, vocab_size: int, name: str
) -> kaldifst.StdVectorFst:
    """``H o right``, determinized and minimized, disambiguation symbols dropped, arc-sorted."""
    fst = kaldifst.compose(H, right)
    _optimize(fst, name)
    fst = remove_disambig(fst, vocab_size + 1)
    kaldifst.arcsort(fst, sort_type="ilabel")
    return fst


def compose_hl(
    H: kaldifst.StdVectorFst, L_disambig: kaldifst.StdVectorFst, vocab_size: int
) -> kaldifst.StdVectorFst:
    """``HL``: compose, determinize, minimize, drop disambiguation symbols, arc-sort."""
    return _compose_with_h(H, L_disambig, vocab_size, "HL")


def compose_hlg(
    H: kaldifst.StdVectorFst,
    L_disambig: kaldifst.StdVectorFst,
    G: kaldifst.StdVectorFst,
    vocab_size: int,
) -> kaldifst.StdVectorFst:
    """``HLG``: ``LG`` determinized and minimized, composed with ``H``, again optimized."""
    kaldifst.arcsort(G, sort_type="ilabel")
    LG = kaldifst.compose(L_disambig, G)
    _optimize(LG, "LG")
    kaldifst.arcsort(LG, sort_type="ilabel")
    return _compose_with_h(H, LG, vocab_size, "HLG")


def compile_graphs(
    lang_dir: str | Path,
    arpa: str | Path | None = None,
    lm_dir: str | Path | None = None,
    max_order: int = -1,
) -> dict[str, Path]:
    """Build ``H.fst``, ``L.fst``, ``L_disambig.fst``, ``HL.fst`` and, with an ARPA LM, ``HLG.fst``.

    ``G`` is written next to the ARPA file as ``<stem>.fst.txt`` (``data/lm/G_3_gram.fst.txt``)
    unless ``lm_dir`` says otherwise. With k2 importable, ``HLG.pt`` is written too. Returns the
    written paths by name.
    """
    lang_dir = Path(lang_dir)
    for name in ("tokens.txt", "words.txt", "lexicon.txt", "lexicon_disambig.txt"):
        if not (lang_dir / name).is_file():
            raise FileNotFoundError(f"{lang_dir / name} is missing (run prepare_lang first)")
    token_table = read_token_table(lang_dir / "tokens.txt")
    word_table = read_token_table(lang_dir / "words.txt")
    lexicon = read_lexicon(lang_dir / "lexicon.txt")
    lexicon_disambig = read_lexicon(lang_dir / "lexicon_disambig.txt")
    vocab_size = len(token_table)
    num_disambig = max_disambig_of(lexicon_disambig) + 1  # #0 .. #max

    H = build_ctc_topo(vocab_size)
    H_disambig = build_ctc_topo(vocab_size, num_disambig)
    L = build_lexicon_fst(lexicon, token_table, word_table)
    L_disambig = build_lexicon_fst(lexicon_disambig, token_table, word_table, disambig=True)
    out = {
        "H": lang_dir / "H.fst",
        "L": lang_dir / "L.fst",
        "L_disambig": lang_dir / "L_disambig.fst",
    }
    _write(H, out["H"])
    _write(L, out["L"])
    _write(L_disambig, out["L_disambig"])
    out["HL"] = lang_dir / "HL.fst"
    L_no_backoff = build_lexicon_fst(
        lexicon_disambig, token_table, word_table, disambig=True, pass_backoff=False
    )
    _write(compose_hl(H_disambig, L_no_backoff, vocab_size), out["HL"])
    if arpa is not None:
        arpa = Path(arpa)
        g_txt = Path(lm_dir or arpa.parent) / f"{arpa.stem}.fst.txt"
        arpa_to_fst_txt(arpa, lang_dir / "words.txt", g_txt, max_order=max_order)
        G = kaldifst.compile(g_txt.read_text(encoding="utf-8"), acceptor=False)
        out["G"] = g_txt
        out["HLG"] = lang_dir / "HLG.fst"
        HLG = compose_hlg(H_disambig, L_disambig, G, vocab_size)
        _write(HLG, out["HLG"])
        try:
            import k2  # noqa: F401
        except ImportError:
            logging.info("k2 is not installed; skipping HLG.pt")
        else:
            out["HLG.pt"] = lang_dir / "HLG.pt"
            fst_to_k2(HLG, out["HLG.pt"])
    return out


def fst_to_k2(fst: kaldifst.StdFst, out_path: str | Path | None = None) -> k2.Fsa:
    """Convert a kaldifst graph (units shifted by one) to a k2 ``Fsa`` (blank = 0), optionally
    saving ``as_dict()`` to ``out_path``."""
    import k2  # optional: only with k2 installed

    graph = k2.Fsa.from_openfst(fst.to_str(show_weight_one=True), acceptor=False)
    graph = k2.connect(k2.remove_epsilon(graph))
    labels = graph.labels.clone()
    labels[labels > 0] -= 1
    graph.labels = labels
    graph = k2.arc_sort(graph)
    if out_path is not None:
        atomic_save(graph.as_dict(), out_path)
    return graph
