"""CTC greedy (best-path) decoding: per-frame argmax, merge repeats, drop blanks."""

from __future__ import annotations

import torch


def ctc_greedy_search(
    log_probs: torch.Tensor, lengths: torch.Tensor | None = None, blank_id: int = 0
) -> list[list[int]]:
    """Unit ids of the greedy CTC path of every utterance in a batch.

    Args:
        log_probs: ``(B, T, V)`` scores (log-probs or logits; only the argmax matters).
        lengths: ``(B,)`` number of valid frames; all ``T`` when None.
        blank_id: id of the CTC blank.
    Returns:
        One list of unit ids per utterance, repeats merged and blanks removed.
    """
    best = log_probs.argmax(dim=-1).cpu()
    if lengths is None:
        lengths = torch.full((best.size(0),), best.size(1), dtype=torch.long)
    hyps = []
    for b in range(best.size(0)):
        path = torch.unique_consecutive(best[b, : int(lengths[b])])
        hyps.append([int(i) for i in path if int(i) != blank_id])
    return hyps
