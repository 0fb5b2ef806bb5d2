"""Search of a decoding graph over CTC log-probs: kaldi-decoder's ``FasterDecoder`` and a lattice
search.

The graph (``H.fst``, ``HL.fst`` or ``HLG.fst`` from :mod:`hourglass_w2v2.lang.graphs`, read by
:func:`hourglass_w2v2.decoding.graph.load_graph`) reads unit ``i`` with input label ``i + 1``;
``DecodableCtc`` supplies ``log_probs[t, i]`` as the acoustic log-likelihood. Costs in the graph
are the LM's (``-ln P``), so an LM scale ``s`` means ``total = -log_probs + s * graph_cost``:

- :meth:`GraphSearch.best_path` runs ``FasterDecoder`` (beam, max-active) at one scale, dividing
  the log-probs by ``s`` (same argmin, and the beam stays in graph-cost units);
- :meth:`GraphSearch.lattice` runs :class:`LatticeSearch` (Kaldi's ``LatticeFasterDecoder``
  pruning: beam, max-active, lattice beam, in numpy) once at scale 1 and keeps a lattice whose
  arcs carry (graph cost, acoustic cost) separately, which the functions of
  :mod:`hourglass_w2v2.decoding.lattice` read to sweep LM scales and list hypotheses for
  rescoring without searching again, as Kaldi's ``lattice-scale`` / ``lattice-to-nbest`` do.
  (kaldi-decoder's own ``LatticeSimpleDecoder`` has no max-active limit: minutes per utterance
  on a weak model.)
"""

from __future__ import annotations

from dataclasses import dataclass

import kaldi_decoder
import kaldifst
import numpy as np

from hourglass_w2v2.decoding.graph import ArrayGraph
from hourglass_w2v2.decoding.lattice import build_lattice


@dataclass
class SearchOptions:
    """Pruning of the graph search (Kaldi's names and meanings)."""

    beam: float = 16.0
    # CTC posteriors are peaky, so few tokens survive on a good model; the limit matters on a
    # weak one, where 7000 (Kaldi's HMM default) makes HLG search many times slower than 1000
    max_active: int = 1000
    min_active: int = 30
    lattice_beam: float = 8.0


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
        self._lattice: LatticeSearch | None = None  # built on first use: it copies the graph

    def best_path(self, log_probs: np.ndarray, lm_scale: float = 1.0) -> list[int]:
        """Output labels (units for H, words for HL/HLG) of the best path; ``(T, V)`` input."""
        return self.align(log_probs, lm_scale)[0]

    def align(self, log_probs: np.ndarray, lm_scale: float = 1.0) -> tuple[list[int], np.ndarray]:
        """The best path's output labels and its unit per frame (``(T,)``, blank 0): the CTC
        alignment word times are read from."""
        none = ([], np.zeros(0, np.int64))
        if len(log_probs) == 0:
            return none
        scaled = np.ascontiguousarray(log_probs / lm_scale, dtype=np.float32)
        self._faster.decode(kaldi_decoder.DecodableCtc(scaled))
        ok, path = self._faster.get_best_path()
        if not ok:
            return none
        ok, ilabels, olabels, _ = kaldifst.get_linear_symbol_sequence(path)
        if not ok:
            return none
        # input label i reads unit i - 1 (0 is epsilon)
        return list(olabels), np.asarray([i - 1 for i in ilabels if i > 0], dtype=np.int64)

    def lattice(self, log_probs: np.ndarray) -> kaldifst.Lattice | None:
        """The pruned raw lattice at LM scale 1 (None for an empty input or a failed search)."""
        if len(log_probs) == 0:
            return None
        if self._lattice is None:
            self._lattice = LatticeSearch(ArrayGraph(self.graph), self.options)
        return self._lattice.search(log_probs)


def _arcs_of(csr: dict[str, np.ndarray], states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(arc indices, index into ``states`` of each arc's source) of all arcs leaving ``states``."""
    begin = csr["offsets"][states]
    counts = csr["offsets"][states + 1] - begin
    which = np.repeat(np.arange(len(states)), counts)
    first = np.cumsum(counts) - counts
    return begin[which] + np.arange(len(which)) - first[which], which


@dataclass
class _Links:
    """Lattice arcs between search tokens (global token ids), graph and acoustic cost apart."""

    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    graph: np.ndarray
    acoustic: np.ndarray
    is_epsilon: bool


_FIELDS = ("src", "dst", "ilabel", "olabel", "graph", "acoustic")


class LatticeSearch:
    """Token-passing lattice search with beam, max-active and lattice-beam pruning.

    kaldi-decoder's ``LatticeSimpleDecoder`` prunes with the beam only, so on the flat posteriors
    of a weak model its active set grows to most of ``HLG`` (minutes per utterance). This is the
    search of Kaldi's ``LatticeFasterDecoder`` done with numpy over a whole frame at once: each
    frame keeps the tokens within ``beam`` of the best one, at most ``max_active`` of them
    (Kaldi's adaptive cutoff), follows epsilon arcs within the same cutoff, and records every
    surviving arc as a lattice link; at the end, links off every path within ``lattice_beam`` of
    the best are dropped (Kaldi's final ``PruneActiveTokens``). The result is a raw
    ``kaldifst.Lattice`` like ``LatticeSimpleDecoder.get_raw_lattice`` returns.
    """

    def __init__(self, graph: ArrayGraph, options: SearchOptions) -> None:
        self.graph = graph
        self.options = options
        self._token_of_state = np.full(graph.num_states, -1, dtype=np.int64)

    def _prune(self, costs: np.ndarray) -> float:
        """The cutoff of one frame: ``beam`` past the best, tightened to keep ``max_active``."""
        o = self.options
        cutoff = costs.min() + o.beam
        if len(costs) > o.max_active:
            cutoff = min(cutoff, np.partition(costs, o.max_active - 1)[o.max_active - 1])
        return float(cutoff)

    def _epsilon_closure(
        self, states: np.ndarray, costs: np.ndarray, cutoff: float, base: int, links: list
    ) -> tuple[np.ndarray, np.ndarray]:
        """Follow epsilon arcs from this frame's tokens (ids ``base + i``) within ``cutoff``."""
        eps = self.graph.epsilon
        tok = self._token_of_state
        tok[states] = np.arange(len(states))
        frontier = np.arange(len(states))
        recorded: list[tuple[np.ndarray, np.ndarray]] = []
        # no negative-cost epsilon cycles in a determinized graph; the bound only guards bugs
        for _ in range(10_000):
            arc, which = _arcs_of(eps, states[frontier])
            if len(arc) == 0:
                break
            src = frontier[which]
            cand = costs[src] + eps["weight"][arc]
            keep = cand <= cutoff
            arc, src, cand = arc[keep], src[keep], cand[keep]
            if len(arc) == 0:
                break
            dst_state = eps["dst"][arc]
            new = np.unique(dst_state[tok[dst_state] < 0])
            if len(new):
                tok[new] = len(states) + np.arange(len(new))
                states = np.concatenate([states, new])
                costs = np.concatenate([costs, np.full(len(new), np.inf)])
            dst = tok[dst_state]
            recorded.append((src, arc))
            best = np.full(len(states), np.inf)
            np.minimum.at(best, dst, cand)
            frontier = np.flatnonzero(best < costs)
            costs = np.minimum(costs, best)
            if len(frontier) == 0:
                break
        else:
            raise RuntimeError("epsilon closure did not converge: negative-cost epsilon cycle?")
        if recorded:
            src = np.concatenate([r[0] for r in recorded])
            arc = np.concatenate([r[1] for r in recorded])
            # an arc is recorded again each time its source improves: keep it once
            _, first = np.unique(src * len(eps["dst"]) + arc, return_index=True)
            src, arc = src[first], arc[first]
            links.append(
                _Links(
                    base + src,
                    base + tok[eps["dst"][arc]],
                    np.zeros(len(arc), dtype=np.int64),
                    eps["olabel"][arc],
                    eps["weight"][arc],
                    np.zeros(len(arc)),
                    True,
                )
            )
        tok[states] = -1
        return states, costs

    def search(self, log_probs: np.ndarray) -> kaldifst.Lattice | None:
        """The pruned raw lattice of one utterance (None for no frames or no surviving path)."""
        g, em = self.graph, self.graph.emitting
        num_frames = len(log_probs)
        if num_frames == 0:
            return None
        links: list[_Links] = []
        states = np.array([g.start], dtype=np.int64)
        costs = np.zeros(1)
        states, costs = self._epsilon_closure(states, costs, self.options.beam, 0, links)
        all_costs = [costs]
        base = 0
        for t in range(num_frames):
            arc, src = _arcs_of(em, states)
            if len(arc) == 0:
                return None
            acoustic = -log_probs[t, em["ilabel"][arc] - 1].astype(np.float64)
            cand = costs[src] + em["weight"][arc] + acoustic
            dst_state = em["dst"][arc]
            # best cost per destination state, then the frame's cutoff over those
            order = np.lexsort((cand, dst_state))
            uniq, first = np.unique(dst_state[order], return_index=True)
            best = cand[order][first]
            cutoff = self._prune(best)
            keep_state = best <= cutoff
            new_states, new_costs = uniq[keep_state], best[keep_state]
            keep = cand <= cutoff
            next_base = base + len(states)
            tok = self._token_of_state
            tok[new_states] = np.arange(len(new_states))
            links.append(
                _Links(
                    base + src[keep],
                    next_base + tok[dst_state[keep]],
                    em["ilabel"][arc[keep]],
                    em["olabel"][arc[keep]],
                    em["weight"][arc[keep]],
                    acoustic[keep],
                    False,
                )
            )
            tok[new_states] = -1
            states, costs = self._epsilon_closure(new_states, new_costs, cutoff, next_base, links)
            all_costs.append(costs)
            base = next_base
        final = g.final[states]
        if not np.isfinite(final).any():
            final = np.zeros(len(states))  # as Kaldi: no final state reached, so all are final
        return self._to_lattice(links, np.concatenate(all_costs), base, final)

    def _to_lattice(
        self, links: list[_Links], alpha: np.ndarray, last_base: int, final: np.ndarray
    ) -> kaldifst.Lattice | None:
        """Prune ``links`` to ``lattice_beam`` of the best path and build the lattice."""
        best = float((alpha[last_base:] + final).min())
        if not np.isfinite(best):
            return None
        beta = np.full(len(alpha), np.inf)
        beta[last_base:] = final
        # groups are in frame order (epsilon links within a frame after the emitting links into
        # it), so one backward sweep gives beta, iterating within a frame for epsilon chains
        for lk in reversed(links):
            cost = lk.graph + lk.acoustic
            while True:
                old = beta[lk.src]
                np.minimum.at(beta, lk.src, cost + beta[lk.dst])
                if not lk.is_epsilon or np.array_equal(old, beta[lk.src]):
                    break
        lk = _Links(*(np.concatenate([getattr(x, f) for x in links]) for f in _FIELDS), False)
        total = alpha[lk.src] + lk.graph + lk.acoustic + beta[lk.dst]
        keep = total <= best + self.options.lattice_beam
        nodes, index = np.unique(np.concatenate([lk.src[keep], lk.dst[keep]]), return_inverse=True)
        src, dst = np.split(index, 2)
        finals = {}
        for n in np.flatnonzero(nodes >= last_base).tolist():
            f = final[nodes[n] - last_base]
            if np.isfinite(f):
                finals[n] = (float(f), 0.0)
        # node 0, the start token, is on every path
        return build_lattice(
            len(nodes),
            0,
            src,
            dst,
            lk.ilabel[keep],
            lk.olabel[keep],
            lk.graph[keep],
            lk.acoustic[keep],
            finals,
        )
