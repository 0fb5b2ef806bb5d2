"""InfoNCE logits, forward+backward: our gathered (B, M, M) cosine matrix vs the candidates tensor.

The reference is the formulation of fairseq's ``compute_preds`` (and HF's): gather every
distractor vector into a (B, M, 1+N, F) candidates tensor and take cosines over F. Ours
(``hourglass_w2v2.models.wav2vec2.contrastive_logits``) takes the cosines of each prediction with
every target of its utterance in one ``bmm`` and gathers the (B, M, N) distractor logits from
that. Both run in the same process on the same inputs; the script prints the median time of each,
the ratio ``reference / ours`` (above 1 = ours is faster), the largest difference of the logits
and of the gradients, peak memory on CUDA, and whether repeated backward passes are bitwise
equal (the reference's indexing backward is not with several CPU threads).

M is the number of masked frames per utterance: wav2vec 2.0's masking (p 0.65, span 10) covers
about 49% of the frames of a crop, 50 frames per second.

    python benchmarks/contrastive_speed.py --device cpu --sizes tiny base --threads 2
    python benchmarks/contrastive_speed.py --device cuda --sizes base large --batch 8
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from hourglass_w2v2.models import ModelConfig
from hourglass_w2v2.models.masking import sample_negative_indices
from hourglass_w2v2.models.wav2vec2 import contrastive_logits

MASKED_PER_SECOND = 0.49 * 50


def candidates_logits(preds, targets, neg_idx, logit_temp):
    """The candidates-tensor formulation (fairseq / HF): (B, M, 1+N, F) gathered, then cosines."""
    b = preds.shape[0]
    negatives = targets[torch.arange(b, device=preds.device)[:, None, None], neg_idx]
    candidates = torch.cat([targets.unsqueeze(2), negatives], dim=2)
    logits = F.cosine_similarity(preds.float().unsqueeze(2), candidates.float(), dim=-1)
    logits = logits / logit_temp
    neg_is_pos = (negatives == targets.unsqueeze(2)).all(-1)
    return torch.cat(
        [logits[..., :1], logits[..., 1:].masked_fill(neg_is_pos, float("-inf"))], dim=-1
    )


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(fn, preds, targets, neg_idx, temp, device, steps):
    """Median ms, peak MiB (CUDA), the logits and the two input gradients of ``fn``."""

    def step():
        preds.grad = targets.grad = None
        logits = fn(preds, targets, neg_idx, temp)
        F.cross_entropy(
            logits.view(-1, logits.shape[-1]),
            logits.new_zeros(logits.shape[0] * logits.shape[1], dtype=torch.long),
        ).backward()
        return logits

    step()
    times, grads = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        logits = step()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000)
        grads.append((preds.grad.clone(), targets.grad.clone()))
    peak = None
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    same = all(torch.equal(g[0], grads[0][0]) and torch.equal(g[1], grads[0][1]) for g in grads)
    return statistics.median(times), peak, logits.detach(), grads[0], same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="+", default=["tiny", "base"])
    ap.add_argument("--seconds", type=float, default=15.6, help="crop length (Base: 250k samples)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device: {name or platform.machine()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, batch {args.batch}, {args.seconds} s crops\n"
    )
    print(
        "| size | M | N | F | reference ms | ours ms | ratio | ref peak MiB | ours peak MiB "
        "| max logit diff | max grad diff | ref bitwise repeatable | ours bitwise repeatable |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        cfg = ModelConfig.preset(size)
        m, n, f = int(args.seconds * MASKED_PER_SECOND), cfg.num_negatives, cfg.final_dim
        gen = torch.Generator().manual_seed(0)
        preds = torch.randn(args.batch, m, f, generator=gen).to(device).requires_grad_()
        targets = torch.randn(args.batch, m, f, generator=gen).to(device)
        targets[:, 1] = targets[:, 0]  # a repeated code, so the -inf path is exercised
        targets.requires_grad_()
        neg_idx = sample_negative_indices(args.batch, m, n).to(device)
        ref = run(candidates_logits, preds, targets, neg_idx, cfg.logit_temp, device, args.steps)
        ours = run(contrastive_logits, preds, targets, neg_idx, cfg.logit_temp, device, args.steps)
        finite = torch.isfinite(ref[2])
        if not torch.equal(finite, torch.isfinite(ours[2])):
            raise SystemExit(f"{size}: the -inf entries differ between the two formulations")
        logit_diff = float((ref[2][finite] - ours[2][finite]).abs().max())
        grad_diff = max(float((a - b).abs().max()) for a, b in zip(ref[3], ours[3], strict=True))
        mem = [f"{x:.0f}" if x is not None else "-" for x in (ref[1], ours[1])]
        print(
            f"| {size} | {m} | {n} | {f} | {ref[0]:.2f} | {ours[0]:.2f} | {ref[0] / ours[0]:.1f} "
            f"| {mem[0]} | {mem[1]} | {logit_diff:.1e} | {grad_diff:.1e} | {ref[4]} | {ours[4]} |"
        )


if __name__ == "__main__":
    main()
