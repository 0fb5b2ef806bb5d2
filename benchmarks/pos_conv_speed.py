"""Forward+backward time of the convolutional position embedding: ``F.conv1d`` vs the FFT path.

``PositionalConvEmbedding(impl="auto")`` takes the FFT path on CPU; this script is what that
choice rests on, and what a GPU session runs to decide it there. Both implementations are
timed in the same run on the same inputs (B, T, C) with the model's weights; the ratio is
``conv time / fft time`` (above 1 = the FFT path is faster). The whole model's step is timed
too (``--model-steps``), since the position conv is only part of it.

    python benchmarks/pos_conv_speed.py --device cpu --sizes tiny base --seconds 5 15
    python benchmarks/pos_conv_speed.py --device cuda --dtype bf16 --sizes base large
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import torch

from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.models.encoder import PositionalConvEmbedding

FRAMES_PER_SECOND = 50  # one frame every 20 ms


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, device: torch.device, steps: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def autocast(device: torch.device, dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if dtype == "bf16" else torch.float16)


def pos_conv_row(cfg: ModelConfig, args, seconds: float, device: torch.device) -> dict:
    """conv vs fft time of one position embedding of ``cfg``'s shape."""
    pos = PositionalConvEmbedding(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups)
    pos = pos.to(device)
    x = torch.randn(
        args.batch, int(seconds * FRAMES_PER_SECOND), cfg.encoder_embed_dim, device=device
    ).requires_grad_()
    out = {}
    for impl in ("conv", "fft"):
        pos.impl = impl

        def step():
            with autocast(device, args.dtype):
                y = pos(x)
            y.float().pow(2).mean().backward()

        out[impl] = time_ms(step, device, args.steps, args.warmup)
    return out


def model_row(cfg: ModelConfig, args, seconds: float, device: torch.device) -> dict:
    """conv vs fft time of a whole pretraining forward+backward+optimizer step."""
    torch.manual_seed(0)
    model = build_model(cfg, "pretrain").to(device).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    wav = torch.randn(args.batch, int(seconds * 16000), device=device)
    out = {}
    for impl in ("conv", "fft"):
        model.encoder.pos_conv.impl = impl

        def step():
            with autocast(device, args.dtype):
                loss = model(wav).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        out[impl] = time_ms(step, device, args.model_steps, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--sizes", nargs="+", default=["tiny-hourglass", "base-hourglass"])
    p.add_argument("--seconds", nargs="+", type=float, default=[5.0, 15.0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--model-steps", type=int, default=5, help="0 skips the whole-model rows")
    args = p.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device: {device} ({name or platform.machine()}), {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, dtype {args.dtype}, batch {args.batch}"
    )
    print("| size | audio s | what | conv ms | fft ms | conv / fft |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        cfg = ModelConfig.preset(size)
        for seconds in args.seconds:
            rows = [("pos_conv", pos_conv_row(cfg, args, seconds, device))]
            if args.model_steps > 0:
                rows.append(("pretrain step", model_row(cfg, args, seconds, device)))
            for what, r in rows:
                print(
                    f"| {size} | {seconds:g} | {what} | {r['conv']:.1f} | {r['fft']:.1f} | "
                    f"{r['conv'] / r['fft']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
