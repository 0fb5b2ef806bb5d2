"""Forward+backward time and memory: torchaudio's wav2vec 2.0 vs ours, vanilla and hourglass.

Every row is measured in the same run on the same inputs: raw waveforms (B, S) through the
feature extractor and the transformer, ``output.float().pow(2).mean().backward()``, all
dropout and LayerDrop off, ``feature_grad_mult`` 1 (torchaudio has none). Ratios are
``torchaudio time / our time`` (above 1 = we are faster) and ``hourglass / vanilla``;
``--checkpointing`` adds rows of our models with activation checkpointing (``extractor``:
``checkpoint_extractor``, ``layers``: ``checkpoint_layers``), compared with the same model
without it and with vanilla without it.

Two memory figures, weights and their gradients excluded from both: "saved" is the bytes of
tensors autograd saves for backward (activations, what the hourglass and checkpointing
shrink); "peak" is the most memory a step holds at once, recomputed activations and
gradients in flight included: the CUDA allocator's peak, or on CPU the rise of the process's
resident-memory high-water mark (``/proc/self/status`` VmHWM, reset before the step, with
buffers from 256 KiB up mmap-ed and the heap trimmed, so that freed memory leaves the
process; smaller buffers may reuse heap memory unseen).

    python benchmarks/encoder_speed.py --device cpu --sizes tiny base --lengths 2 5 --steps 2
    python benchmarks/encoder_speed.py --sizes base --lengths 15 --factors 4 --resample avg \
        --checkpointing none extractor extractor+layers --no-torchaudio
    python benchmarks/encoder_speed.py --device cuda --dtype bf16 --sizes base --compile
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio

from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.models.memory import saved_activation_bytes
from hourglass_w2v2.training.allocator import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, MMAP_THRESHOLD

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
# activation checkpointing settings: ModelConfig overrides
CHECKPOINTING = {
    "none": {},
    "extractor": {"checkpoint_extractor": True},
    "layers": {"checkpoint_layers": True},
    "extractor+layers": {"checkpoint_extractor": True, "checkpoint_layers": True},
}


@dataclass
class Row:
    size: str
    seconds: float
    model: str
    checkpointing: str
    time_ms: float
    saved_mb: float
    peak_mb: float


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


def make_step(
    module: torch.nn.Module, wav: torch.Tensor, dtype: torch.dtype | None, keep_grads: bool = False
):
    """One forward+backward of ``module`` on ``wav`` (under autocast to ``dtype`` if given).

    With ``keep_grads`` the parameter gradients stay allocated (zeroed) after the step, so a
    memory measurement of the next step does not count them.
    """

    def step() -> None:
        ctx = torch.autocast(wav.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with ctx:
            out = module(wav)
        out.float().pow(2).mean().backward()
        module.zero_grad(set_to_none=not keep_grads)

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


@contextlib.contextmanager
def buffers_returned_on_free(threshold: int = 1 << 18):
    """glibc serves buffers of ``threshold`` bytes and more by mmap while inside, and trims
    the heap down to its live part, so freeing a buffer lowers the resident memory and the
    high-water mark sees every such buffer a step holds. Yields ``malloc_trim``.

    Otherwise glibc raises its mmap threshold (up to 32 MiB) after frees and keeps freed
    blocks in the heap, where the next step reuses them unseen. On exit it goes back to fixed
    thresholds at the ceilings its dynamic ones reach in these runs (32 MiB mmap, 64 MiB trim).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: measure as it is
        yield lambda: None
        return
    mallopt(M_MMAP_THRESHOLD, threshold)
    mallopt(M_TRIM_THRESHOLD, threshold)
    try:
        yield lambda: malloc_trim(0)
    finally:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)


def _status_bytes(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.M).group(1)) * 1024


def peak_mb(step, device: torch.device) -> float:
    """Most memory held at once during ``step`` above what was held before it (docstring).

    ``step`` runs twice: the first call allocates what outlives a step (parameter gradients,
    with ``make_step(keep_grads=True)``), the second is measured.
    """
    cuda = device.type == "cuda"
    with contextlib.nullcontext(lambda: None) if cuda else buffers_returned_on_free() as trim:
        step()
        trim()  # the heap keeps no freed pages: the high-water mark starts from live memory
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        base = _status_bytes("VmRSS")
        step()
        return (_status_bytes("VmHWM") - base) / 2**20


def run(args: argparse.Namespace) -> list[Row]:
    """Measure every (size, length, model) combination the arguments ask for."""
    device = torch.device(args.device)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[args.dtype]
    rows: list[Row] = []
    for size in args.sizes:
        cfg = ModelConfig.preset(size, **NO_DROPOUT)
        configs = [("ours vanilla", cfg)]
        for factor in args.factors:
            for mode in args.resample:
                shorten, upsample = RESAMPLE[mode]
                hcfg = cfg.replace(
                    hourglass=hourglass_layout(cfg.encoder_layers, factor),
                    shorten=shorten,
                    upsample=upsample,
                )
                configs.append((f"hourglass x{factor} {mode}", hcfg))
        variants: list[tuple[str, str, torch.nn.Module, bool]] = []
        if args.torchaudio:
            variants.append(("torchaudio", "none", torchaudio_model(cfg), True))
        for name, model_cfg in configs:
            for ckpt in args.checkpointing:
                model = build_model(model_cfg.replace(**CHECKPOINTING[ckpt]))
                variants.append((name, ckpt, model, False))
        for seconds in args.lengths:
            gen = torch.Generator().manual_seed(0)
            wav = torch.randn(args.batch, int(16000 * seconds), generator=gen).to(device)
            steps = {}
            for name, ckpt, model, is_ta in variants:
                module = _Encode(model, is_ta).to(device).train()
                if args.compile:
                    module = torch.compile(module, dynamic=False)
                steps[name, ckpt] = (make_step(module, wav, dtype), module)
                for _ in range(args.warmup):
                    steps[name, ckpt][0]()
            # round-robin, so load changes on a shared machine hit every model alike
            times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
            for _ in range(args.steps):
                for key, (step, _) in steps.items():
                    times[key].append(time_step(step, device))
            for (name, ckpt), (step, module) in steps.items():
                ms = statistics.median(times[name, ckpt])
                saved = saved_activation_bytes(step, module) / 2**20
                # parameter gradients stay allocated from the first step on: not counted
                peak = peak_mb(make_step(module, wav, dtype, keep_grads=True), device)
                module.zero_grad(set_to_none=True)
                rows.append(Row(size, seconds, name, ckpt, ms, saved, peak))
                log.info(
                    "%s %gs %-22s %-16s %9.1f ms saved %8.1f MB peak %8.1f MB",
                    size,
                    seconds,
                    name,
                    ckpt,
                    ms,
                    saved,
                    peak,
                )
            del steps
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def table(rows: list[Row], markdown: bool) -> str:
    """Rows with ratios against torchaudio, against our vanilla model of the same setting
    without checkpointing, and (time) against the same model without checkpointing."""
    ref = {(r.size, r.seconds, r.model, r.checkpointing): r for r in rows}
    header = [
        "size",
        "audio (s)",
        "model",
        "checkpointing",
        "fwd+bwd (ms)",
        "speed vs torchaudio",
        "speed vs vanilla",
        "time vs unchecked",
        "saved (MB)",
        "saved vs vanilla",
        "peak (MB)",
        "peak vs vanilla",
    ]
    lines = []
    for r in rows:
        ta = ref.get((r.size, r.seconds, "torchaudio", "none"))
        ours = r.model != "torchaudio"
        van = ref.get((r.size, r.seconds, "ours vanilla", "none")) if ours else None
        unchecked = ref.get((r.size, r.seconds, r.model, "none"))
        lines.append(
            [
                r.size,
                f"{r.seconds:g}",
                r.model,
                r.checkpointing,
                f"{r.time_ms:.1f}",
                f"{ta.time_ms / r.time_ms:.2f}x" if ta else "",
                f"{van.time_ms / r.time_ms:.2f}x" if van else "",
                f"{r.time_ms / unchecked.time_ms - 1:+.0%}" if unchecked is not r else "",
                f"{r.saved_mb:.0f}",
                f"{r.saved_mb / van.saved_mb:.0%}" if van else "",
                f"{r.peak_mb:.0f}",
                f"{r.peak_mb / van.peak_mb:.0%}" if van else "",
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
    parser.add_argument(
        "--checkpointing",
        nargs="+",
        choices=list(CHECKPOINTING),
        default=["none"],
        help="activation checkpointing settings of our models, one row each",
    )
    parser.add_argument(
        "--torchaudio",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure torchaudio's model (--no-torchaudio skips it)",
    )
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
