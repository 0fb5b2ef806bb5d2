"""Graph search over CTC log-probs with kaldi-decoder (the k2-fsa project's Kaldi decoders).

The graph (``H.fst``, ``HL.fst`` or ``HLG.fst`` from :mod:`hourglass_w2v2.lang.graphs`) reads
unit ``i`` with input label ``i + 1``; ``DecodableCtc`` supplies ``log_probs[t, i]`` as the
acoustic log-likelihood. Costs in the graph are the LM's (``-ln P``), so an LM scale ``s`` means
``total = -log_probs + s * graph_cost``:

- :meth:`GraphSearch.best_path` runs ``FasterDecoder`` (beam, max-active) at one scale, dividing
  the log-probs by ``s`` (same argmin, and the beam stays in graph-cost units);
- :meth:`GraphSearch.lattice` runs :class:`LatticeSearch` (Kaldi's ``LatticeFasterDecoder``
  pruning: beam, max-active, lattice beam, in numpy) once at scale 1 and keeps a lattice whose
  arcs carry (graph cost, acoustic cost) separately, so :func:`lattice_best_path` can sweep LM
  scales and :func:`lattice_nbest` can list hypotheses for rescoring without searching again, as
  Kaldi's ``lattice-scale`` / ``lattice-to-nbest`` do. (kaldi-decoder's own
  ``LatticeSimpleDecoder`` has no max-active limit: minutes per utterance on a weak model.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
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
    # -log sum over the alignments of exp(-total cost) at the scale the list was scored at
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
        self._lattice: LatticeSearch | None = None  # built on first use: it copies the graph

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
        if self._lattice is None:
            self._lattice = LatticeSearch(ArrayGraph(self.graph), self.options)
        return self._lattice.search(log_probs)


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


def build_lattice(
    num_states: int,
    start: int,
    src: np.ndarray,
    dst: np.ndarray,
    ilabel: np.ndarray,
    olabel: np.ndarray,
    graph: np.ndarray,
    acoustic: np.ndarray,
    finals: dict[int, tuple[float, float]],
) -> kaldifst.Lattice:
    """A raw ``kaldifst.Lattice`` from arc arrays (costs: graph and acoustic, -log) and
    ``{state: (graph, acoustic)}`` final weights: the form every n-best function here reads,
    whichever search (ours, or k2's) produced the arcs."""
    lat = kaldifst.Lattice()
    for _ in range(num_states):
        lat.add_state()
    lat.start = start
    for s, d, i, o, gc, ac in zip(
        np.asarray(src).tolist(),
        np.asarray(dst).tolist(),
        np.asarray(ilabel).tolist(),
        np.asarray(olabel).tolist(),
        np.asarray(graph, dtype=np.float64).tolist(),
        np.asarray(acoustic, dtype=np.float64).tolist(),
        strict=True,
    ):
        lat.add_arc(s, kaldifst.LatticeArc(i, o, kaldifst.LatticeWeight(gc, ac), d))
    for n, (gc, ac) in finals.items():
        lat.set_final(n, kaldifst.LatticeWeight(gc, ac))
    return lat


def lattice_best_path(lattice: kaldifst.Lattice | None, lm_scale: float) -> list[int]:
    """Output labels of the best path of ``lattice`` with graph costs scaled by ``lm_scale``."""
    if lattice is None:
        return []
    lat = lattice.copy()
    kaldifst.scale_lattice(kaldifst.lattice_scale(lm_scale, 1.0), lat)
    ok, _, olabels, _ = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(lat, n=1))
    return list(olabels) if ok else []


def _lattice_arrays(lattice: kaldifst.Lattice) -> tuple[np.ndarray, np.ndarray]:
    """Arcs ``(src, dst, olabel, graph, acoustic)`` and finals ``(state, graph, acoustic)``."""
    arcs, finals = [], []
    for line in lattice.to_str().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            g, a = parts[4].split(",") if len(parts) > 4 else ("0", "0")
            arcs.append((parts[0], parts[1], parts[3], g, a))
        elif parts:
            g, a = parts[1].split(",") if len(parts) > 1 else ("0", "0")
            finals.append((parts[0], g, a))
    return (
        np.array(arcs, dtype=np.float64).reshape(-1, 5),
        np.array(finals, dtype=np.float64).reshape(-1, 3),
    )


def _topological_levels(src: np.ndarray, dst: np.ndarray, num_states: int) -> np.ndarray:
    """Longest-path depth of each state of an acyclic lattice (every arc goes up a level)."""
    level = np.zeros(num_states, dtype=np.int64)
    for _ in range(num_states + 1):
        new = level.copy()
        np.maximum.at(new, dst, level[src] + 1)
        if np.array_equal(new, level):
            return level
        level = new
    raise ValueError("the lattice has a cycle")


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct ``keys``, the order sorting ``keys`` and where each key's run starts in it, for
    ``ufunc.reduceat`` (much faster than ``ufunc.at`` on rows)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    if len(keys) == 0:
        return sorted_keys, order, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return sorted_keys[starts], order, starts


class LatticeArrays:
    """A raw lattice as arrays, with its arcs grouped by the topological level of their source."""

    def __init__(self, lattice: kaldifst.Lattice) -> None:
        arcs, finals = _lattice_arrays(lattice)
        self.start = lattice.start
        self.src, self.dst, self.olabel = (arcs[:, i].astype(np.int64) for i in range(3))
        self.graph, self.acoustic = arcs[:, 3], arcs[:, 4]
        self.num_states = int(max(arcs[:, :2].max(initial=0), finals[:, 0].max(), self.start)) + 1
        self.final_graph = np.full(self.num_states, np.inf)
        self.final_acoustic = np.full(self.num_states, np.inf)
        fs = finals[:, 0].astype(np.int64)
        self.final_graph[fs], self.final_acoustic[fs] = finals[:, 1], finals[:, 2]
        self.level = _topological_levels(self.src, self.dst, self.num_states)
        # arcs by the level of their source state, in increasing level
        self.groups = dict(_split_by(self.level[self.src])) if len(self.src) else {}

    def sample_words(
        self, num_paths: int, scale: float, rng: np.random.Generator
    ) -> list[tuple[int, ...]]:
        """Word sequences of ``num_paths`` paths drawn from the posterior ``exp(-scale*cost)``.

        icefall's ``Nbest.from_lattice``: a backward log-sum pass gives each state's total
        probability to the end, then all paths walk forward at once, picking each next arc (or
        stopping at a final state) with its share of that total.
        """
        cost = scale * (self.graph + self.acoustic)
        final = scale * (self.final_graph + self.final_acoustic)
        beta = final.copy()  # -log of the summed probability from a state to the end
        for group in reversed(self.groups.values()):
            src = self.src[group]
            contrib = np.full(self.num_states, -np.inf)
            np.logaddexp.at(contrib, src, -(cost[group] + beta[self.dst[group]]))
            touched = np.unique(src)
            beta[touched] = -np.logaddexp(-beta[touched], contrib[touched])
        # choices of a state: its arcs, then "stop" (dst -1) if final; CSR by state
        src = np.concatenate([self.src, np.flatnonzero(np.isfinite(final))])
        dst = np.concatenate([self.dst, np.full(len(src) - len(self.src), -1)])
        olabel = np.concatenate([self.olabel, np.zeros(len(src) - len(self.src), np.int64)])
        step_cost = np.concatenate([cost + beta[self.dst], final[np.isfinite(final)]])
        order = np.argsort(src, kind="stable")
        src, dst, olabel = src[order], dst[order], olabel[order]
        prob = np.exp(beta[src] - step_cost[order])
        offsets = np.zeros(self.num_states + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=self.num_states), out=offsets[1:])
        cum = np.cumsum(prob)
        before = np.concatenate([[0.0], cum])[offsets[:-1]]
        state = np.full(num_paths, self.start)
        alive = np.ones(num_paths, dtype=bool)
        words: list[np.ndarray] = []
        for _ in range(len(self.groups) + 1):
            idx = np.flatnonzero(alive)
            if len(idx) == 0:
                break
            s = state[idx]
            total = cum[offsets[s + 1] - 1] - before[s]
            target = before[s] + rng.random(len(idx)) * total
            pick = np.searchsorted(cum, target, side="right")
            pick = np.clip(pick, offsets[s], offsets[s + 1] - 1)
            step = np.zeros(num_paths, dtype=np.int64)
            step[idx] = olabel[pick]
            words.append(step)
            state[idx] = dst[pick]
            alive[idx] = dst[pick] >= 0
        table = np.stack(words, axis=1) if words else np.zeros((num_paths, 0), np.int64)
        return [tuple(int(w) for w in row[row > 0]) for row in table]

    def score(
        self, hyps: list[tuple[int, ...]], lm_scales: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per word sequence and LM scale, ``(num_hyps, num_scales)`` each: best-alignment total
        cost, that alignment's graph cost, and the log-sum cost over all of its alignments.

        One forward pass in topological order over the reachable pairs (lattice state, prefix),
        the prefixes being the nodes of a trie of the hypotheses, so all are scored at once
        and only pairs some hypothesis can be in are ever made.
        """
        scales = np.asarray(lm_scales, dtype=np.float64)
        cost = self.graph[:, None] * scales + self.acoustic[:, None]  # (arcs, scales)
        children: dict[tuple[int, int], int] = {}
        ends = []
        for h in hyps:
            node = 0
            for w in h:
                node = children.setdefault((node, w), len(children) + 1)
            ends.append(node)
        num_prefixes = len(children) + 1
        max_word = int(max(self.olabel.max(initial=0), max((w for _, w in children), default=0)))
        edge_keys = np.array([p * (max_word + 1) + w for p, w in children], dtype=np.int64)
        edge_child = np.array(list(children.values()), dtype=np.int64)
        sort = np.argsort(edge_keys)
        edge_keys, edge_child = edge_keys[sort], edge_child[sort]
        # pending[level]: (state, prefix, viterbi, graph, logsum) arriving at states of that level
        pending: dict[int, list[tuple[np.ndarray, ...]]] = {
            int(self.level[self.start]): [
                (np.array([self.start]), np.array([0]), *(np.zeros((1, len(scales))),) * 3)
            ]
        }
        final = self.final_graph[:, None] * scales + self.final_acoustic[:, None]
        shape = (num_prefixes, len(scales))
        best_viterbi, best_graph, best_logsum = (np.full(shape, np.inf) for _ in range(3))
        for lvl in np.unique(self.level).tolist():
            if lvl not in pending:
                continue
            state, prefix, vit, gra, lsm = (
                np.concatenate(x) for x in zip(*pending.pop(lvl), strict=True)
            )
            keys, order, starts = _segments(state * num_prefixes + prefix)
            state, prefix = np.divmod(keys, num_prefixes)
            # the graph cost goes with the best alignment, so take it at the Viterbi argmin
            vit_sorted, gra_sorted = vit[order], gra[order]
            vit = np.minimum.reduceat(vit_sorted, starts)
            run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
            is_best = vit_sorted == vit[run]
            gra = np.minimum.reduceat(np.where(is_best, gra_sorted, np.inf), starts)
            lsm = -np.logaddexp.reduceat(-lsm[order], starts)
            at_final = np.isfinite(self.final_graph[state])
            if at_final.any():
                p, f = prefix[at_final], state[at_final]
                keys, order, starts = _segments(p)
                v = (vit[at_final] + final[f])[order]
                g = (gra[at_final] + self.final_graph[f, None])[order]
                lsum = -np.logaddexp.reduceat(-(lsm[at_final] + final[f])[order], starts)
                vmin = np.minimum.reduceat(v, starts)
                run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
                gmin = np.minimum.reduceat(np.where(v == vmin[run], g, np.inf), starts)
                # final states can sit at several levels: merge with what earlier ones gave
                better = vmin < best_viterbi[keys]
                best_graph[keys] = np.where(better, gmin, best_graph[keys])
                best_viterbi[keys] = np.minimum(best_viterbi[keys], vmin)
                best_logsum[keys] = -np.logaddexp(-best_logsum[keys], -lsum)
            arcs = self.groups.get(lvl)
            if arcs is None:
                continue
            # join the arcs leaving these states with the pairs at them (pairs sorted by state)
            lo = np.searchsorted(state, self.src[arcs], side="left")
            hi = np.searchsorted(state, self.src[arcs], side="right")
            which = np.repeat(np.arange(len(arcs)), hi - lo)
            pair = lo[which] + np.arange(len(which)) - (np.cumsum(hi - lo) - (hi - lo))[which]
            arc = arcs[which]
            word = self.olabel[arc]
            new_prefix = prefix[pair]
            has_word = word > 0
            if has_word.any():
                key = prefix[pair[has_word]] * (max_word + 1) + word[has_word]
                pos = np.clip(np.searchsorted(edge_keys, key), 0, max(len(edge_keys) - 1, 0))
                found = edge_keys[pos] == key if len(edge_keys) else np.zeros(len(key), bool)
                child = np.where(found, edge_child[pos] if len(edge_child) else 0, -1)
                new_prefix[has_word] = child
            ok = new_prefix >= 0
            arc, pair, new_prefix = arc[ok], pair[ok], new_prefix[ok]
            dst = self.dst[arc]
            out = (
                dst,
                new_prefix,
                vit[pair] + cost[arc],
                gra[pair] + self.graph[arc, None],
                lsm[pair] + cost[arc],
            )
            dst_level = self.level[dst]
            for lv, idx in _split_by(dst_level):
                pending.setdefault(lv, []).append(tuple(x[idx] for x in out))
        return best_viterbi[ends], best_graph[ends], best_logsum[ends]


def _split_by(values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(value, indices)`` for each distinct value."""
    if len(values) == 0:
        return []
    keys, order, starts = _segments(values)
    return list(zip(keys.tolist(), np.split(order, starts[1:]), strict=True))


NBEST_SCALE = 0.5
"""Paths are drawn with lattice costs times this (icefall's ``nbest_scale``): more variety."""


def lattice_nbest(
    lattice: kaldifst.Lattice | None,
    num_paths: int,
    lm_scale: float = 1.0,
    nbest_scale: float = NBEST_SCALE,
    seed: int = 0,
) -> list[Hypothesis]:
    """Distinct word sequences of ``num_paths`` paths sampled from ``lattice``, best first.

    As icefall's n-best methods: paths are drawn from the lattice's posterior at ``lm_scale``
    flattened by ``nbest_scale`` (more variety), the best path is added, and each distinct word
    sequence is scored on the whole lattice: its best alignment's total cost, split into its
    lowest graph cost and the rest as acoustic cost, and ``logsum_cost`` over all its
    alignments. Time grows linearly with ``num_paths``; ``seed`` makes the draw repeatable.
    """
    if lm_scale <= 0 or nbest_scale <= 0:
        raise ValueError(
            f"lm_scale and nbest_scale must be positive, got {lm_scale}, {nbest_scale}"
        )
    if lattice is None:
        return []
    return nbest_from_arrays(
        LatticeArrays(lattice), lattice, num_paths, lm_scale, nbest_scale, seed
    )


def nbest_from_arrays(
    arrays: LatticeArrays,
    lattice: kaldifst.Lattice,
    num_paths: int,
    lm_scale: float,
    nbest_scale: float = NBEST_SCALE,
    seed: int = 0,
) -> list[Hypothesis]:
    """:func:`lattice_nbest` with the lattice's arrays made once (for an LM-scale sweep)."""
    if not np.isfinite(arrays.final_graph).any():
        return []
    rng = np.random.default_rng(seed)
    sampled = arrays.sample_words(num_paths, lm_scale * nbest_scale, rng)
    hyps = list(dict.fromkeys([tuple(lattice_best_path(lattice, lm_scale)), *sampled]))
    viterbi, graph, logsum = (x[:, 0] for x in arrays.score(hyps, [lm_scale]))
    out = [
        Hypothesis(list(h), float(g), float(v - lm_scale * g), float(ls))
        for h, v, g, ls in zip(hyps, viterbi, graph, logsum, strict=True)
        if np.isfinite(v)
    ]
    return sorted(out, key=lambda h: h.total_cost(lm_scale))


LN10 = math.log(10.0)
