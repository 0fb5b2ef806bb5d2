"""Real-time factor of decoding a test set: the acoustic model batched as ``bin.decode`` does it.

Random-weight CTC models (the time of a forward pass does not depend on the weights' values)
decode ``--num-utts`` generated utterances whose durations follow LibriSpeech test-clean's
(log-normal, median 6 s, 1.3 to 35 s; 2,620 utterances, 5.4 h in the real set). They are
sorted and grouped into batches of at most ``--max-duration`` padded seconds by
``data.batching.make_batches``, the batching of ``bin.decode``; each batch goes through the
model (``--dtype`` autocast on CUDA) and greedy CTC search. Every model decodes the same
batches after one warm-up pass over the first two. Prints per model: audio, model and search
seconds, RTF (seconds of compute per second of audio), peak memory (CUDA: allocator peak), and
hourglass vs vanilla.

    python benchmarks/decode_rtf.py --device cuda --dtype bf16 --models base base-hourglass
    python benchmarks/decode_rtf.py --models tiny tiny-hourglass --num-utts 20   # CPU
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from hourglass_w2v2.data.batching import make_batches
from hourglass_w2v2.greedy import ctc_greedy_search
from hourglass_w2v2.models import SAMPLE_RATE, ModelConfig, build_model

VOCAB = 32  # a char lang dir's size


@dataclass
class Utterance:
    """What make_batches reads of a cut, and the samples."""

    id: int
    duration: float
    samples: torch.Tensor


def utterances(num: int, seed: int = 0) -> list[Utterance]:
    """Noise bursts with test-clean's spread of durations."""
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(6.0), 0.7, num), 1.3, 35.0)
    out = []
    for i, d in enumerate(durations):
        n = int(d * SAMPLE_RATE)
        samples = (0.1 * rng.standard_normal(n)).astype(np.float32)
        out.append(Utterance(i, n / SAMPLE_RATE, torch.from_numpy(samples)))
    return out


def decode(model, batch: list[Utterance], device, dtype) -> tuple[float, float, list]:
    """Model and search seconds of one batch, and its greedy unit ids."""
    lengths = torch.tensor([len(u.samples) for u in batch])
    waves = torch.zeros(len(batch), int(lengths.max()))
    for i, u in enumerate(batch):
        waves[i, : len(u.samples)] = u.samples
    padding_mask = torch.arange(waves.shape[1])[None] >= lengths[:, None]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        out = model(waves.to(device), padding_mask.to(device))
        log_probs = out.logits.float().log_softmax(-1)
    frames = (~out.padding_mask).sum(1) if out.padding_mask is not None else None
    sync()
    mid = time.perf_counter()
    hyps = ctc_greedy_search(log_probs, frames)
    return mid - start, time.perf_counter() - mid, hyps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["base", "base-hourglass"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--num-utts", type=int, default=200)
    p.add_argument("--max-duration", type=float, default=60.0, help="padded seconds per batch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    utts = utterances(args.num_utts)
    batches = make_batches(utts, args.max_duration)
    audio = sum(u.duration for u in utts)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{torch.get_num_threads()} threads of {os.cpu_count()} CPUs, {platform.machine()}"
    print(
        f"{len(utts)} utterances, {audio / 3600:.2f} h, {len(batches)} batches of <= "
        f"{args.max_duration:g} padded s; {args.device} ({where}), {args.dtype}, torch "
        f"{torch.__version__}"
    )
    print("| model | params (M) | model s | search s | RTF | peak memory (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    rtf = {}
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(ModelConfig.preset(name), "ctc", VOCAB).to(device).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        for batch in batches[:2]:  # warm-up: kernels, allocator, autotuning
            decode(model, batch, device, dtype)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model_s = search_s = 0.0
        for batch in batches:
            m, s, _ = decode(model, batch, device, dtype)
            model_s, search_s = model_s + m, search_s + s
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        rtf[name] = (model_s + search_s) / audio
        peak_text = f"{peak:.0f}" if peak is not None else "-"
        print(
            f"| {name} | {params:.1f} | {model_s:.2f} | {search_s:.2f} | {rtf[name]:.5f} | "
            f"{peak_text} |"
        )
        del model
    for name in args.models:
        vanilla = name.replace("-hourglass", "")
        if name != vanilla and vanilla in rtf:
            print(f"{name} vs {vanilla}: {rtf[vanilla] / rtf[name]:.2f}x the speed")


if __name__ == "__main__":
    main()
