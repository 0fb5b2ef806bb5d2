"""ctc-greedy equals a plain argmax decode written independently."""

import torch

from hourglass_w2v2.greedy import ctc_greedy_search


def plain_argmax_decode(log_probs, length, blank=0):
    out, prev = [], None
    for t in range(length):
        best = max(range(log_probs.shape[1]), key=lambda v: float(log_probs[t, v]))
        if best != prev and best != blank:
            out.append(best)
        prev = best
    return out


def test_equals_plain_argmax():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(4, 50, 7, generator=g).log_softmax(-1)
    lengths = torch.tensor([50, 31, 1, 12])
    hyps = ctc_greedy_search(log_probs, lengths)
    assert hyps == [plain_argmax_decode(log_probs[b], int(lengths[b])) for b in range(4)]
    assert any(len(h) > 5 for h in hyps)


def test_hand_example():
    # frames: a a <b> a b b <b> <b> c  ->  a a b c
    seq = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    log_probs = torch.full((1, len(seq), 4), -5.0)
    log_probs[0, torch.arange(len(seq)), torch.tensor(seq)] = 0.0
    assert ctc_greedy_search(log_probs) == [[1, 1, 2, 3]]
    assert ctc_greedy_search(log_probs, torch.tensor([0])) == [[]]
