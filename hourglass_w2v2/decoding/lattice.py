"""Lattice operations shared by both search backends: build, best path, n-best and scoring.

A lattice here is a raw ``kaldifst.Lattice`` whose arcs carry the graph cost and the acoustic
cost apart (natural-log units), whichever search made it: the lattice search of
:mod:`hourglass_w2v2.decoding.search` or k2's pruned intersection
(:func:`hourglass_w2v2.decoding.k2_backend.lattice`, through :func:`build_lattice`). Keeping the
two costs apart lets :func:`lattice_best_path` sweep LM scales and :func:`lattice_nbest` list
hypotheses for rescoring without searching again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import kaldifst
import numpy as np


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


def nbest_decoding(
    lattice: kaldifst.Lattice | None, num_paths: int, lm_scales: Sequence[float]
) -> list[list[int]]:
    """Output labels of the ``nbest`` method at every LM scale (icefall's ``nbest_decoding``).

    ``num_paths`` paths in all are drawn from the lattice, shared out over the scales, plus the
    best path at each; the union of their word sequences is scored once on the whole lattice and,
    per scale, the sequence with the lowest log-sum cost over its alignments wins.
    """
    if lattice is None:
        return [[] for _ in lm_scales]
    arrays = LatticeArrays(lattice)
    rng = np.random.default_rng(0)
    per_scale = max(1, num_paths // len(lm_scales))
    hyps = []
    for s in lm_scales:
        hyps.append(tuple(lattice_best_path(lattice, s)))
        hyps += arrays.sample_words(per_scale, s * NBEST_SCALE, rng)
    hyps = list(dict.fromkeys(hyps))
    _, _, logsum = arrays.score(hyps, lm_scales)
    return [list(hyps[int(np.argmin(logsum[:, i]))]) for i in range(len(lm_scales))]


def rescore_nbest(
    lattice: kaldifst.Lattice | None,
    num_paths: int,
    lm_scales: Sequence[float],
    lm_cost: Callable[[list[int]], float],
) -> list[list[int]]:
    """Output labels of the ``lm-rescore`` method at every LM scale (icefall's
    ``rescore_with_n_best_list``).

    The n-best list is drawn once at LM scale 1 (:func:`lattice_nbest`); ``lm_cost`` gives each
    hypothesis's cost under the new LM (``-ln P``), and at scale ``s`` the hypothesis with the
    lowest ``acoustic cost + s * LM cost`` wins.
    """
    hyps = lattice_nbest(lattice, num_paths, 1.0)
    if not hyps:
        return [[] for _ in lm_scales]
    costs = [lm_cost(h.olabels) for h in hyps]
    out = []
    for s in lm_scales:
        totals = [h.acoustic_cost + s * c for h, c in zip(hyps, costs, strict=True)]
        out.append(hyps[int(np.argmin(totals))].olabels)
    return out

