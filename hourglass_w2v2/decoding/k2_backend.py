"""The same graphs searched with k2 (optional: used only when ``import k2`` works).

``HLG.pt`` is ``HLG.fst`` converted to a k2 ``Fsa`` by
:func:`hourglass_w2v2.lang.graphs.fst_to_k2`: the kaldi-decoder graphs shift units by one so
that label 0 can be epsilon, which k2 does not need, so the epsilons are removed and the labels
shifted back (blank = 0, final arcs -1). Search is k2's pruned intersection of the graph with the
batch of log-probs (``intersect_dense_pruned``) and its shortest path, as icefall's ``1best``
decoding; the LM scale divides the log-probs, as in the kaldi-decoder search.

``nbest`` / ``lm-rescore`` take k2's pruned lattice (at LM scale 1, graph and acoustic scores
kept apart as icefall keeps ``lm_scores``) as a ``kaldifst.Lattice`` (:func:`k2_arcs_to_lattice`),
so the n-best draw, scoring and rescoring are :mod:`hourglass_w2v2.decoding.lattice`'s tested
code. The conversion is tested here on arrays; the k2 calls themselves need k2, which has no
wheel for this project's Python/torch, so they have never run in our CI
(``tests/decoding/test_k2_backend.py``).
"""

from __future__ import annotations

from pathlib import Path

import kaldifst
import numpy as np
import torch

from hourglass_w2v2.decoding.lattice import build_lattice

try:
    import k2
except ImportError:  # the caller checks available() first
    k2 = None


def available() -> bool:
    """Whether k2 can be imported."""
    return k2 is not None


def load_k2_graph(path: str | Path, device: torch.device | str = "cpu") -> k2.Fsa:
    """Load a graph saved by :func:`hourglass_w2v2.lang.graphs.fst_to_k2`; ``graph_scores`` keeps
    its own scores, which k2 carries onto every lattice arc (the acoustic part is then
    ``scores - graph_scores``)."""
    graph = k2.Fsa.from_dict(torch.load(path, map_location=device)).to(device)
    graph.graph_scores = graph.scores.clone()
    return graph


def k2_arcs_to_lattice(
    src: np.ndarray,
    dst: np.ndarray,
    label: np.ndarray,
    words: list[list[int]],
    scores: np.ndarray,
    graph_scores: np.ndarray,
) -> kaldifst.Lattice | None:
    """A k2 lattice's arcs (one FSA: start 0, final = the largest state, reached by label -1)
    as a raw ``kaldifst.Lattice`` with the kaldi graphs' conventions.

    Units move up by one (label 0 is epsilon there) and the arcs into the final state become
    epsilons of a final state with weight one; scores (log-probs) become costs, split into the
    graph's and the rest (acoustic). An arc with several words (k2's ``remove_epsilon`` leaves
    ragged ``aux_labels``) becomes a chain, its costs on the first link.
    """
    if len(src) == 0:
        return None
    src, dst, label = (np.asarray(a, dtype=np.int64) for a in (src, dst, label))
    graph_cost = -np.asarray(graph_scores, dtype=np.float64)
    acoustic_cost = -np.asarray(scores, dtype=np.float64) - graph_cost
    final_state = int(max(src.max(), dst.max()))
    num_states = final_state + 1
    ilabel = np.where(label >= 0, label + 1, 0)
    arcs = []  # (src, dst, ilabel, olabel, graph, acoustic)
    for i, ws in enumerate(words):
        ws = [w for w in ws if w > 0]
        s, d = int(src[i]), int(dst[i])
        if len(ws) <= 1:
            arcs.append((s, d, int(ilabel[i]), ws[0] if ws else 0, graph_cost[i], acoustic_cost[i]))
            continue
        for j, w in enumerate(ws):
            nxt = d if j == len(ws) - 1 else num_states
            if nxt == num_states:
                num_states += 1
            first = j == 0
            arcs.append(
                (
                    s,
                    nxt,
                    int(ilabel[i]) if first else 0,
                    w,
                    graph_cost[i] if first else 0.0,
                    acoustic_cost[i] if first else 0.0,
                )
            )
            s = nxt
    cols = list(zip(*arcs, strict=True))
    return build_lattice(num_states, 0, *cols, finals={final_state: (0.0, 0.0)})


def _pruned_lattices(
    graph: k2.Fsa,
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    search_beam: float,
    output_beam: float,
    min_active_states: int,
    max_active_states: int,
) -> tuple[k2.Fsa, torch.Tensor]:
    """k2's pruned intersection of ``graph`` with a ``(B, T, V)`` batch, and the order of its
    lattices (``DenseFsaVec`` wants decreasing lengths: lattice ``r`` is utterance ``order[r]``)."""
    order = torch.argsort(lengths, descending=True)
    segments = (
        torch.stack([order, torch.zeros_like(order), lengths[order]], dim=1).to(torch.int32).cpu()
    )
    dense = k2.DenseFsaVec(log_probs.to(graph.device), segments)
    lattices = k2.intersect_dense_pruned(
        graph, dense, search_beam, output_beam, min_active_states, max_active_states
    )
    return lattices, order


def lattice(
    graph: k2.Fsa,
    log_probs: torch.Tensor,
    search_beam: float = 20.0,
    output_beam: float = 8.0,
    min_active_states: int = 30,
    max_active_states: int = 10000,
) -> kaldifst.Lattice | None:
    """k2's pruned lattice of one utterance's ``(T, V)`` log-probs, at LM scale 1."""
    if len(log_probs) == 0:
        return None
    lats, _ = _pruned_lattices(
        graph,
        log_probs[None],
        torch.tensor([len(log_probs)]),
        search_beam,
        output_beam,
        min_active_states,
        max_active_states,
    )
    lat = lats[0]
    arcs = lat.arcs.values()[:, :3].cpu().numpy()
    if len(arcs) == 0:
        return None
    aux = lat.aux_labels
    words = aux.tolist() if isinstance(aux, k2.RaggedTensor) else [[w] for w in aux.tolist()]
    return k2_arcs_to_lattice(
        arcs[:, 0],
        arcs[:, 1],
        arcs[:, 2],
        words,
        lat.scores.detach().cpu().double().numpy(),
        lat.graph_scores.detach().cpu().double().numpy(),
    )


def _paths_to_labels(best: k2.Fsa) -> list[list[int]]:
    """Positive output labels (words) of every path of a ``shortest_path`` result."""
    if isinstance(best.aux_labels, k2.RaggedTensor):
        aux = best.aux_labels.remove_values_leq(0)
        shape = best.arcs.shape().compose(aux.shape).remove_axis(1).remove_axis(1)
        ragged = k2.RaggedTensor(shape, aux.values)
    else:
        ragged = k2.RaggedTensor(best.arcs.shape().remove_axis(1), best.aux_labels)
        ragged = ragged.remove_values_leq(0)
    return ragged.tolist()


def one_best(
    graph: k2.Fsa,
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    lm_scale: float = 1.0,
    search_beam: float = 20.0,
    output_beam: float = 8.0,
    min_active_states: int = 30,
    max_active_states: int = 10000,
) -> list[list[int]]:
    """Output labels of the best path for every utterance of a ``(B, T, V)`` batch."""
    lattices, order = _pruned_lattices(
        graph,
        log_probs / lm_scale,
        lengths,
        search_beam,
        output_beam,
        min_active_states,
        max_active_states,
    )
    best = k2.shortest_path(lattices, use_double_scores=True)
    sorted_hyps = _paths_to_labels(best)
    hyps: list[list[int]] = [[] for _ in range(len(order))]
    for rank, idx in enumerate(order.tolist()):
        hyps[idx] = sorted_hyps[rank]
    return hyps
