"""Decoding graphs for search: an ``H``/``HL``/``HLG`` FST read for kaldi-decoder, or as arrays.

:func:`load_graph` reads the FSTs ``compile_graphs`` writes (:mod:`hourglass_w2v2.lang.graphs`)
as ``ConstFst`` for kaldi-decoder; :class:`ArrayGraph` holds the same graph as numpy arrays for
the lattice search (:class:`hourglass_w2v2.decoding.search.LatticeSearch`). The k2 form
(``HLG.pt``) is loaded by :func:`hourglass_w2v2.decoding.k2_backend.load_k2_graph`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import kaldifst
import numpy as np


def load_graph(path: str | Path) -> kaldifst.StdConstFst:
    """Read an FST written by ``compile_graphs`` as a ``ConstFst`` (faster to search)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decoding graph {path} does not exist (run prepare.sh stage 5)")
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise ValueError(f"{path} is not a readable OpenFst file")
    return kaldifst.StdConstFst(fst)


class ArrayGraph:
    """A decoding graph as numpy arrays (arcs grouped by source state), for :class:`LatticeSearch`.

    Emitting arcs (input label > 0) and epsilon arcs are kept apart, each in CSR form:
    the arcs of state ``s`` are ``offsets[s]:offsets[s + 1]``.
    """

    def __init__(self, fst: kaldifst.StdFst) -> None:
        start = time.time()
        self.start = fst.start
        self.num_states = fst.num_states
        fields, counts = _parse_fst_text(fst.to_str(show_weight_one=True))
        # lines of 5 fields are arcs "src dst ilabel olabel weight", of 2 finals "state weight"
        ends = np.cumsum(counts)
        is_arc, is_final = counts == 5, counts == 2
        if not np.all(is_arc | is_final):
            raise ValueError(f"unexpected FST text lines of {sorted(set(counts.tolist()))} fields")
        arc_cols = (ends[is_arc] - 5)[:, None] + np.arange(5)
        a = fields[arc_cols].reshape(-1, 5)
        final_cols = (ends[is_final] - 2)[:, None] + np.arange(2)
        finals = fields[final_cols].reshape(-1, 2)
        self.final = np.full(self.num_states, np.inf)
        self.final[finals[:, 0].astype(np.int64)] = finals[:, 1]
        src = a[:, 0].astype(np.int64)
        emitting = a[:, 2] > 0
        self.emitting = self._csr(src[emitting], a[emitting])
        self.epsilon = self._csr(src[~emitting], a[~emitting])
        logging.debug("graph arrays: %d arcs in %.2f s", len(a), time.time() - start)

    def _csr(self, src: np.ndarray, arcs: np.ndarray) -> dict[str, np.ndarray]:
        order = np.argsort(src, kind="stable")
        offsets = np.zeros(self.num_states + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=self.num_states), out=offsets[1:])
        arcs = arcs[order]
        return {
            "offsets": offsets,
            "dst": arcs[:, 1].astype(np.int64),
            "ilabel": arcs[:, 2].astype(np.int64),
            "olabel": arcs[:, 3].astype(np.int64),
            "weight": arcs[:, 4],
        }


def _parse_fst_text(text: str) -> tuple[np.ndarray, np.ndarray]:
    """All numbers of an OpenFst text dump and how many each line has (vectorized: a Python
    loop over the millions of lines of a real HLG takes half a minute)."""
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    if len(data) and data[-1] != ord("\n"):
        data = np.append(data, np.uint8(ord("\n")))
    blank = (data == ord(" ")) | (data == ord("\t")) | (data == ord("\n"))
    starts = ~blank & np.r_[True, blank[:-1]]  # first character of each field
    newlines = np.flatnonzero(data == ord("\n"))
    per_line = np.diff(np.r_[0, np.cumsum(starts)[newlines]])
    counts = per_line[per_line > 0]
    fields = np.array(text.split(), dtype=np.float64)
    return fields, counts
