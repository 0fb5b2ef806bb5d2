"""Pretraining throughput: updates/s, audio-seconds/s and peak memory per model.

CPU (the default, what ``make bench`` runs):

    python benchmarks/train_speed.py                      # tiny vs tiny-hourglass, fp32

One H100, bf16, eager and compiled, with HF transformers' Wav2Vec2ForPreTraining as the peer:

    python benchmarks/train_speed.py --device cuda --precision bf16 \\
        --models base base-hourglass hf-base --compile both --batch-seconds 87.5

Each update is a full pretraining step (forward with masking, quantizer and contrastive loss,
backward, AdamW step) on a random-audio batch of ``--batch-seconds`` seconds cut into
``--utt-seconds`` utterances, as the trainer would run it. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch

from hourglass_w2v2.models import ModelConfig, build_model

SR = 16000


def _hf_step(model, waves: torch.Tensor):
    from transformers.models.wav2vec2.modeling_wav2vec2 import (
        _compute_mask_indices,
        _sample_negative_indices,
    )

    batch, samples = waves.shape
    frames = int(model._get_feat_extract_output_lengths(samples))
    mask = _compute_mask_indices((batch, frames), mask_prob=0.65, mask_length=10, min_masks=2)
    neg = _sample_negative_indices((batch, frames), 100, mask_time_indices=mask)
    out = model(
        waves,
        mask_time_indices=torch.from_numpy(mask).to(waves.device),
        sampled_negative_indices=torch.from_numpy(neg).to(waves.device),
    )
    return out.loss


def build(name: str, device: torch.device):
    """(model, step function returning the loss) for a preset name or ``hf-base``."""
    if name == "hf-base":
        from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

        model = Wav2Vec2ForPreTraining(Wav2Vec2Config(layerdrop=0.05)).to(device)
        return model, _hf_step
    model = build_model(ModelConfig.preset(name), task="pretrain").to(device)
    return model, lambda m, w: m(w).loss


def measure(name: str, compiled: bool, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, step = build(name, device)
    model.train()
    if compiled:
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda" or None)
    utt = int(args.utt_seconds * SR)
    batch = max(1, int(args.batch_seconds // args.utt_seconds))
    waves = torch.randn(batch, utt, device=device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    def update(i: int) -> None:
        if hasattr(model, "set_num_updates"):
            model.set_num_updates(i)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = step(model, waves)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 25.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(args.warmup):
        update(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(args.updates):
        update(args.warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {
        "model": name + (" (compiled)" if compiled else ""),
        "params_M": params / 1e6,
        "updates_per_s": args.updates / elapsed,
        "audio_s_per_s": args.updates * batch * utt / SR / elapsed,
        "peak_gb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["tiny", "tiny-hourglass"],
        help="presets, or hf-base for HF transformers' Wav2Vec2ForPreTraining",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", default="no", choices=["no", "yes", "both"])
    parser.add_argument("--batch-seconds", type=float, default=20.0)
    parser.add_argument("--utt-seconds", type=float, default=5.0)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure every model this many times, interleaved, report the "
        "median (fairer on a shared machine)",
    )
    args = parser.parse_args()
    variants = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(
        f"device: {device_name}; precision {args.precision}; batch "
        f"{args.batch_seconds:g} s as {args.utt_seconds:g} s utterances; "
        f"{args.updates} timed updates after {args.warmup} warm-up, median of {args.repeats}; "
        f"torch {torch.__version__}"
    )
    runs = [(name, compiled) for name in args.models for compiled in variants]
    results = {run: [] for run in runs}
    for repeat in range(args.repeats):
        for run in runs:
            r = measure(*run, args)
            results[run].append(r)
            # one line as each run ends, so a run cut short by a time limit still leaves figures
            print(
                f"measured (repeat {repeat + 1}/{args.repeats}): {r['model']} "
                f"{r['audio_s_per_s']:.1f} audio-s/s, peak {_gib(r['peak_gb'])} GiB",
                flush=True,
            )
    print("| model | params (M) | updates/s | audio-s/s | peak GiB |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for run in runs:
        r = sorted(results[run], key=lambda x: x["audio_s_per_s"])[len(results[run]) // 2]
        rows.append(r)
        print(
            f"| {r['model']} | {r['params_M']:.1f} | {r['updates_per_s']:.3f} | "
            f"{r['audio_s_per_s']:.1f} | {_gib(r['peak_gb'])} |",
            flush=True,
        )
    if len(rows) > 1:
        ref = rows[0]
        for r in rows[1:]:
            print(
                f"{r['model']} / {ref['model']}: "
                f"{r['audio_s_per_s'] / ref['audio_s_per_s']:.2f}x audio-s/s"
            )


def _gib(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


if __name__ == "__main__":
    main()
