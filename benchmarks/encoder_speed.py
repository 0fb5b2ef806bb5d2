"""Forward+backward time and memory: torchaudio's wav2vec 2.0 vs ours, vanilla and hourglass.

Every row is measured in the same run on the same inputs: raw waveforms (B, S) through the
feature extractor and the transformer, ``output.float().pow(2).mean().backward()``, all
dropout and LayerDrop off, ``feature_grad_mult`` 1 (torchaudio has none). Ratios are
``torchaudio time / our time`` (above 1 = we are faster) and ``hourglass / vanilla``.

Memory is the CUDA peak allocated minus the weights on GPU; on CPU, where there is no peak
allocator statistic, it is the bytes of tensors autograd saves for backward (activations),
which is what the hourglass shrinks.

    python benchmarks/encoder_speed.py --device cpu --sizes tiny base --lengths 2 5 --steps 2
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --sizes base --compile
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import statistics
import time
from dataclasses import dataclass

import torch
import torchaudio

from hourglass_w2v2.models import ModelConfig, build_model

log = logging.getLogger("encoder_speed")

NO_DROPOUT = dict(
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    dropout_input=0.0,
    dropout_features=0.0,
    layerdrop=0.0,
    feature_grad_mult=1.0,
)
# resampling pairs: NVIDIA's "naive" (mean pool + repeat) and learned linear both ways
RESAMPLE = {"avg": ("avg", "repeat"), "linear": ("linear", "linear")}


@dataclass
class Row:
    size: str
    seconds: float
    model: str
    time_ms: float
    memory_mb: float


def torchaudio_model(cfg: ModelConfig) -> torch.nn.Module:
    """torchaudio's Wav2Vec2Model with the same shape as ``cfg``."""
    return torchaudio.models.wav2vec2_model(
        extractor_mode=cfg.extractor_mode,
        extractor_conv_layer_config=cfg.extractor_conv_layers,
        extractor_conv_bias=cfg.extractor_conv_bias,
        encoder_embed_dim=cfg.encoder_embed_dim,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=cfg.conv_pos,
        encoder_pos_conv_groups=cfg.conv_pos_groups,
        encoder_num_layers=cfg.encoder_layers,
        encoder_num_heads=cfg.encoder_attention_heads,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=cfg.encoder_ffn_embed_dim,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=cfg.layer_norm_first,
        encoder_layer_drop=0.0,
        aux_num_out=None,
    )


class _Encode(torch.nn.Module):
    """Waveforms -> encoder output for either implementation (one forward to compile)."""

    def __init__(self, model: torch.nn.Module, is_torchaudio: bool):
        super().__init__()
        self.model, self.is_torchaudio = model, is_torchaudio

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.model(wav)[0] if self.is_torchaudio else self.model.encode(wav)


def hourglass_layout(num_layers: int, factor: int) -> list:
    """NVIDIA's shape scaled to the depth: 1/6 of the layers at each end, the rest shortened."""
    outer = max(1, num_layers // 6)
    return [outer, [num_layers - 2 * outer, factor], outer]


def _saved_bytes(fn, module: torch.nn.Module) -> int:
    """Bytes of distinct non-parameter tensors autograd saves while running ``fn``."""
    weights = {p.untyped_storage().data_ptr() for p in module.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def make_step(module: torch.nn.Module, wav: torch.Tensor, dtype: torch.dtype | None):
    """One forward+backward of ``module`` on ``wav`` (under autocast to ``dtype`` if given)."""

    def step() -> None:
        ctx = torch.autocast(wav.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with ctx:
            out = module(wav)
        out.float().pow(2).mean().backward()
        module.zero_grad(set_to_none=True)

    return step


def time_step(step, device: torch.device) -> float:
    """Milliseconds of one call of ``step``."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1000


def memory_mb(step, module: torch.nn.Module, device: torch.device) -> float:
    """CUDA peak above the resident weights, or saved activations on CPU (module docstring)."""
    if device.type != "cuda":
        return _saved_bytes(step, module) / 2**20
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def run(args: argparse.Namespace) -> list[Row]:
    """Measure every (size, length, model) combination the arguments ask for."""
    device = torch.device(args.device)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[args.dtype]
    rows: list[Row] = []
    for size in args.sizes:
        cfg = ModelConfig.preset(size, **NO_DROPOUT)
        variants: list[tuple[str, torch.nn.Module, bool]] = [
            ("torchaudio", torchaudio_model(cfg), True),
            ("ours vanilla", build_model(cfg), False),
        ]
        for factor in args.factors:
            for mode in args.resample:
                shorten, upsample = RESAMPLE[mode]
                hcfg = cfg.replace(
                    hourglass=hourglass_layout(cfg.encoder_layers, factor),
                    shorten=shorten,
                    upsample=upsample,
                )
                variants.append((f"hourglass x{factor} {mode}", build_model(hcfg), False))
        for seconds in args.lengths:
            gen = torch.Generator().manual_seed(0)
            wav = torch.randn(args.batch, int(16000 * seconds), generator=gen).to(device)
            steps = {}
            for name, model, is_ta in variants:
                module = _Encode(model, is_ta).to(device).train()
                if args.compile:
                    module = torch.compile(module, dynamic=False)
                steps[name] = (make_step(module, wav, dtype), module)
                for _ in range(args.warmup):
                    steps[name][0]()
            # round-robin, so load changes on a shared machine hit every model alike
            times: dict[str, list[float]] = {name: [] for name in steps}
            for _ in range(args.steps):
                for name, (step, _) in steps.items():
                    times[name].append(time_step(step, device))
            for name, (step, module) in steps.items():
                ms, mb = statistics.median(times[name]), memory_mb(step, module, device)
                rows.append(Row(size, seconds, name, ms, mb))
                log.info("%s %gs %-22s %9.1f ms %9.1f MB", size, seconds, name, ms, mb)
            del steps
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def table(rows: list[Row], markdown: bool) -> str:
    """Rows with ratios against torchaudio and against our vanilla model of the same setting."""
    ref = {(r.size, r.seconds, r.model): r for r in rows}
    header = [
        "size",
        "audio (s)",
        "model",
        "fwd+bwd (ms)",
        "speed vs torchaudio",
        "speed vs vanilla",
        "memory (MB)",
        "memory vs vanilla",
    ]
    lines = []
    for r in rows:
        ta = ref.get((r.size, r.seconds, "torchaudio"))
        van = ref.get((r.size, r.seconds, "ours vanilla"))
        lines.append(
            [
                r.size,
                f"{r.seconds:g}",
                r.model,
                f"{r.time_ms:.1f}",
                f"{ta.time_ms / r.time_ms:.2f}x" if ta else "",
                f"{van.time_ms / r.time_ms:.2f}x" if van and r.model != "torchaudio" else "",
                f"{r.memory_mb:.0f}",
                f"{r.memory_mb / van.memory_mb:.0%}" if van and r.model != "torchaudio" else "",
            ]
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*c) for c in lines])


def describe_machine(device: str) -> str:
    """One line naming the hardware and software the numbers come from."""
    if device == "cuda":
        hw = torch.cuda.get_device_name()
    else:
        hw = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"{hw}; torch {torch.__version__}, torchaudio {torchaudio.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    parser.add_argument("--sizes", nargs="+", default=["base"], choices=["tiny", "base", "large"])
    parser.add_argument("--lengths", nargs="+", type=float, default=[2, 5, 10, 15, 30])
    parser.add_argument("--factors", nargs="+", type=int, default=[2, 3, 4, 5, 6])
    parser.add_argument("--resample", nargs="+", choices=list(RESAMPLE), default=list(RESAMPLE))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = run(args)
    print(
        f"\n{describe_machine(args.device)}; batch {args.batch}, {args.dtype}"
        f"{', torch.compile' if args.compile else ''}, median of {args.steps} steps\n"
    )
    print(table(rows, args.markdown))


if __name__ == "__main__":
    main()
