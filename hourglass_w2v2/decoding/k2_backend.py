"""The same graphs searched with k2 (optional: used only when ``import k2`` works).

``HLG.pt`` is ``HLG.fst`` converted to a k2 ``Fsa``: the kaldi-decoder graphs shift units by one
so that label 0 can be epsilon, which k2 does not need, so the epsilons are removed and the
labels shifted back (blank = 0, final arcs -1). Search is k2's pruned intersection of the graph
with the batch of log-probs (``intersect_dense_pruned``) and its shortest path, as icefall's
``1best`` decoding; the LM scale divides the log-probs, as in the kaldi backend.
"""

from __future__ import annotations

from pathlib import Path

import kaldifst
import torch

try:
    import k2
except ImportError:  # the caller checks available() first
    k2 = None


def available() -> bool:
    """Whether k2 can be imported."""
    return k2 is not None


def fst_to_k2(fst: kaldifst.StdFst, out_path: str | Path | None = None) -> k2.Fsa:
    """Convert a kaldifst graph (units shifted by one) to a k2 ``Fsa`` (blank = 0), optionally
    saving ``as_dict()`` to ``out_path``."""
    graph = k2.Fsa.from_openfst(fst.to_str(show_weight_one=True), acceptor=False)
    graph = k2.connect(k2.remove_epsilon(graph))
    labels = graph.labels.clone()
    labels[labels > 0] -= 1
    graph.labels = labels
    graph = k2.arc_sort(graph)
    if out_path is not None:
        torch.save(graph.as_dict(), out_path)
    return graph


def load_k2_graph(path: str | Path, device: torch.device | str = "cpu") -> k2.Fsa:
    """Load a graph saved by :func:`fst_to_k2`."""
    return k2.Fsa.from_dict(torch.load(path, map_location=device)).to(device)


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
    order = torch.argsort(lengths, descending=True)  # DenseFsaVec wants decreasing lengths
    segments = (
        torch.stack([order, torch.zeros_like(order), lengths[order]], dim=1).to(torch.int32).cpu()
    )
    dense = k2.DenseFsaVec(log_probs / lm_scale, segments)
    lattice = k2.intersect_dense_pruned(
        graph, dense, search_beam, output_beam, min_active_states, max_active_states
    )
    best = k2.shortest_path(lattice, use_double_scores=True)
    sorted_hyps = _paths_to_labels(best)
    hyps: list[list[int]] = [[] for _ in range(len(order))]
    for rank, idx in enumerate(order.tolist()):
        hyps[idx] = sorted_hyps[rank]
    return hyps
