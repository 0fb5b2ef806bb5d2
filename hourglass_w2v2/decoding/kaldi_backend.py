"""Graph search over CTC log-probs with kaldi-decoder (the k2-fsa project's Kaldi decoders).

The graph (``H.fst``, ``HL.fst`` or ``HLG.fst`` from :mod:`hourglass_w2v2.lang.graphs`) reads
unit ``i`` with input label ``i + 1``; ``DecodableCtc`` supplies ``log_probs[t, i]`` as the
acoustic log-likelihood. Costs in the graph are the LM's (``-ln P``), so an LM scale ``s`` means
``total = -log_probs + s * graph_cost``:

- :meth:`GraphSearch.best_path` runs ``FasterDecoder`` (beam, max-active) at one scale, dividing
  the log-probs by ``s`` (same argmin, and the beam stays in graph-cost units);
- :meth:`GraphSearch.lattice` runs ``LatticeSimpleDecoder`` once at scale 1 and keeps a lattice
  (lattice beam) whose arcs carry (graph cost, acoustic cost) separately, so
  :func:`lattice_best_path` can sweep LM scales and :func:`lattice_nbest` can list hypotheses for
  rescoring without searching again, as Kaldi's ``lattice-scale`` / ``lattice-to-nbest`` do.
  It has no max-active limit, so it is only used where a lattice is needed (n-best).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import kaldi_decoder
import kaldifst
import numpy as np


@dataclass
class SearchOptions:
    """Pruning of the graph search (Kaldi's names and meanings)."""

    beam: float = 16.0
    # CTC posteriors are peaky, so few tokens survive on a good model; the limit matters on a
    # weak one, where 7000 (Kaldi's HMM default) makes HLG search ~20x slower than 1000
    max_active: int = 1000
    min_active: int = 30
    lattice_beam: float = 8.0


@dataclass
class Hypothesis:
    """One path of a lattice: output labels and its two costs (natural-log units)."""

    olabels: list[int]
    graph_cost: float
    acoustic_cost: float
    # -log sum_{alignments} exp(-cost) at the scale the n-best list was drawn with
    logsum_cost: float | None = None

    def total_cost(self, lm_scale: float) -> float:
        return self.acoustic_cost + lm_scale * self.graph_cost


def load_graph(path: str | Path) -> kaldifst.StdConstFst:
    """Read an FST written by ``compile_graphs`` as a ``ConstFst`` (faster to search)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"decoding graph {path} does not exist (run prepare.sh stage 5)")
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise ValueError(f"{path} is not a readable OpenFst file")
    return kaldifst.StdConstFst(fst)


class GraphSearch:
    """Viterbi search of one decoding graph; one instance is reused across utterances."""

    def __init__(self, graph: kaldifst.StdFst, options: SearchOptions | None = None) -> None:
        self.graph = graph
        self.options = options or SearchOptions()
        o = self.options
        self._faster = kaldi_decoder.FasterDecoder(
            graph,
            kaldi_decoder.FasterDecoderOptions(
                beam=o.beam, max_active=o.max_active, min_active=o.min_active
            ),
        )
        self._lattice = kaldi_decoder.LatticeSimpleDecoder(
            graph,
            kaldi_decoder.LatticeSimpleDecoderConfig(beam=o.beam, lattice_beam=o.lattice_beam),
        )

    def best_path(self, log_probs: np.ndarray, lm_scale: float = 1.0) -> list[int]:
        """Output labels (units for H, words for HL/HLG) of the best path; ``(T, V)`` input."""
        if len(log_probs) == 0:
            return []
        scaled = np.ascontiguousarray(log_probs / lm_scale, dtype=np.float32)
        self._faster.decode(kaldi_decoder.DecodableCtc(scaled))
        ok, path = self._faster.get_best_path()
        if not ok:
            return []
        ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(path)
        return list(olabels) if ok else []

    def lattice(self, log_probs: np.ndarray) -> kaldifst.Lattice | None:
        """The pruned raw lattice at LM scale 1 (None for an empty input or a failed search)."""
        if len(log_probs) == 0:
            return None
        self._lattice.decode(
            kaldi_decoder.DecodableCtc(np.ascontiguousarray(log_probs, dtype=np.float32))
        )
        ok, lat = self._lattice.get_raw_lattice()
        return lat if ok and lat.num_states > 0 else None


def lattice_best_path(lattice: kaldifst.Lattice | None, lm_scale: float) -> list[int]:
    """Output labels of the best path of ``lattice`` with graph costs scaled by ``lm_scale``."""
    if lattice is None:
        return []
    lat = lattice.copy()
    kaldifst.scale_lattice(kaldifst.lattice_scale(lm_scale, 1.0), lat)
    ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(lat, n=1))
    return list(olabels) if ok else []


def lattice_nbest(
    lattice: kaldifst.Lattice | None, num_paths: int, lm_scale: float = 1.0
) -> list[Hypothesis]:
    """Up to ``num_paths`` distinct output sequences of ``lattice``, best first.

    The raw lattice holds many alignments of the same words, so ``4 * num_paths`` paths are
    drawn and merged by word sequence, keeping each sequence's best costs.
    """
    if lm_scale <= 0:
        raise ValueError(f"lm_scale must be positive, got {lm_scale}")
    if lattice is None:
        return []
    lat = lattice.copy()
    kaldifst.scale_lattice(kaldifst.lattice_scale(lm_scale, 1.0), lat)
    paths = kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(lat, n=4 * num_paths))
    best: dict[tuple[int, ...], Hypothesis] = {}
    alignment_costs: dict[tuple[int, ...], list[float]] = {}
    for path in paths:
        ok, _, olabels, weight = kaldifst.get_linear_symbol_sequence(path)
        if not ok:
            continue
        # scaling multiplied the graph cost; undo it so hypotheses carry unscaled costs
        hyp = Hypothesis(list(olabels), weight.value1 / lm_scale, weight.value2)
        key = tuple(olabels)
        alignment_costs.setdefault(key, []).append(hyp.total_cost(lm_scale))
        if key not in best or hyp.total_cost(lm_scale) < best[key].total_cost(lm_scale):
            best[key] = hyp
    for key, hyp in best.items():
        costs = np.asarray(alignment_costs[key])
        hyp.logsum_cost = float(costs.min() - np.log(np.exp(costs.min() - costs).sum()))
    return sorted(best.values(), key=lambda h: h.total_cost(lm_scale))[:num_paths]


LN10 = math.log(10.0)
