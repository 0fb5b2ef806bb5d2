"""Pretraining throughput: updates/s, audio-seconds/s and peak memory per model.

CPU (the default, what ``make bench`` runs):

    python benchmarks/train_speed.py                      # tiny vs tiny-hourglass, fp32

One H100, bf16, eager and compiled, with HF transformers' Wav2Vec2ForPreTraining as the peer:

    python benchmarks/train_speed.py --device cuda --precision bf16 \\
        --models base base-hourglass hf-base --compile both --batch-seconds 87.5

Each update is a full pretraining step (forward with masking, quantizer and contrastive loss,
backward, AdamW step) on a random-audio batch of ``--batch-seconds`` seconds cut into
``--utt-seconds`` utterances, as the trainer would run it. Prints a markdown table.

The real trainer on the demo's pretraining config and corpus (``--trainer``; needs
``egs/synth/SSL/data``, made by ``cd egs/synth/SSL && ./prepare.sh --size large
--bpe-vocab-sizes ""`` or by ``make demo``):

    python benchmarks/train_speed.py --trainer --updates 300 \
        --settings exact exact-seed2 fp32 bf16 workers0

Each setting (``--settings``, names from ``SETTINGS``: config overrides plus a torch thread
count) trains ``--updates`` updates of ``Trainer`` from scratch in a temporary experiment
directory. The table gives the trainer's audio-seconds/s after ``--warmup`` updates, its ratio
to the first setting's, the loss over the last ``--loss-window`` updates and its gap to the
first setting's (the ``exact-seed2`` row shows what another seed alone changes), and the
trainer's throughput as a share of a bare forward+backward+step loop on the same batches (in a
process of its own, so that both start cold). ``--repeats N`` runs the settings N times,
interleaved, and reports medians: on a machine whose speed drifts, each round's ratio to the
first setting is fairer than one run's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import torch

from hourglass_w2v2.models import ModelConfig, build_model

SR = 16000
REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "egs/synth/SSL/conf/pretrain_tiny_hourglass_demo.yaml"
#: candidate trainer settings: (config overrides, torch threads or None for torch's default).
#: ``data.crop_multiple`` rounds each batch's crop down to a multiple of that many samples, so
#: that batches come in few lengths and oneDNN reuses the kernels it built for a shape.
#: Settings that do not name ``trainer.polyphase_conv_backward``, ``trainer.reuse_freed_memory``
#: or ``trainer.onednn_linear`` turn them off, whatever the config says, so that ``fp32`` stays
#: the plain eager trainer the others are compared with.
_SETTINGS: dict[str, tuple[list[str], int | None]] = {
    "exact": (["data.crop_multiple=0"], None),  # fairseq's crop: each batch a new length
    "exact-seed2": (["data.crop_multiple=0", "trainer.seed=43"], None),
    "fp32": ([], None),
    "fp32-seed2": (["trainer.seed=43"], None),
    "bf16": (["trainer.precision=bf16"], None),
    "compile": (["trainer.compile=true"], None),
    "bf16-compile": (["trainer.precision=bf16", "trainer.compile=true"], None),
    "workers0": (["data.num_workers=0"], None),
    "workers2": (["data.num_workers=2"], None),
    "threads1": ([], 1),
    "polyphase": (["trainer.polyphase_conv_backward=true"], None),
    "polyphase-fused": (["trainer.polyphase_conv_backward=true", "optim.fused_cpu=true"], None),
    "polyphase-reuse": (
        ["trainer.polyphase_conv_backward=true", "trainer.reuse_freed_memory=true"],
        None,
    ),
    "polyphase-fused-reuse": (
        [
            "trainer.polyphase_conv_backward=true",
            "optim.fused_cpu=true",
            "trainer.reuse_freed_memory=true",
        ],
        None,
    ),
    "bf16-polyphase-reuse": (
        [
            "trainer.precision=bf16",
            "trainer.polyphase_conv_backward=true",
            "trainer.reuse_freed_memory=true",
        ],
        None,
    ),
    "polyphase-reuse-onednn": (
        [
            "trainer.polyphase_conv_backward=true",
            "trainer.reuse_freed_memory=true",
            "trainer.onednn_linear=true",
        ],
        None,
    ),
    "polyphase-fused-reuse-onednn": (
        [
            "trainer.polyphase_conv_backward=true",
            "optim.fused_cpu=true",
            "trainer.reuse_freed_memory=true",
            "trainer.onednn_linear=true",
        ],
        None,
    ),
    "fp32-crop0.25s": ([f"data.crop_multiple={SR // 4}"], None),
    "fp32-crop0.5s": ([f"data.crop_multiple={SR // 2}"], None),
    "fp32-crop2s": ([f"data.crop_multiple={2 * SR}"], None),
    "bf16-crop0.25s": (["trainer.precision=bf16", f"data.crop_multiple={SR // 4}"], None),
    "bf16-crop2s": (["trainer.precision=bf16", f"data.crop_multiple={2 * SR}"], None),
}
_OFF_UNLESS_NAMED = (
    "trainer.polyphase_conv_backward",
    "trainer.reuse_freed_memory",
    "trainer.onednn_linear",
)
SETTINGS = {
    name: (
        [
            f"{key}=false"
            for key in _OFF_UNLESS_NAMED
            if not any(o.startswith(f"{key}=") for o in overrides)
        ]
        + overrides,
        threads,
    )
    for name, (overrides, threads) in _SETTINGS.items()
}


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


def _import_trainer() -> SimpleNamespace:
    """The training layer, imported only in ``--trainer`` mode (it pulls in lhotse): a namespace
    of ``load_config``, ``build_optimizer``, ``PretrainTask``, ``PRECISIONS``,
    ``apply_speed_options`` and ``TimedTrainer``."""
    from hourglass_w2v2.training.config import load_config
    from hourglass_w2v2.training.optim import build_optimizer
    from hourglass_w2v2.training.pretrain_task import PretrainTask
    from hourglass_w2v2.training.trainer import PRECISIONS, Trainer, apply_speed_options

    class TimedTrainer(Trainer):
        """The trainer, recording per update its loss, audio and wall time, and keeping the
        micro-batches of its first ``keep`` updates for the bare loop."""

        def __init__(self, *args, keep: int = 0, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.keep = keep
            self.records: list[dict] = []
            self.kept: list[list[dict]] = []
            self._last = None

        def train_step(self, group: list[dict]) -> dict[str, float] | None:
            if self._last is None:  # the clock starts at the first update, after loader start-up
                self._last = time.perf_counter()
            if len(self.records) < self.keep:
                self.kept.append(group)
            out = super().train_step(group)
            if out is not None:
                now = time.perf_counter()
                # from the previous update's end: data wait, logging and checkpoints included
                seconds = now - self._last
                self.records.append(
                    {"loss": out["loss"], "audio": out["audio_seconds"], "seconds": seconds}
                )
                self._last = now
            return out

        def run_validation(self) -> dict[str, float]:
            return {}  # validation is outside the training throughput

    return SimpleNamespace(
        load_config=load_config,
        build_optimizer=build_optimizer,
        PretrainTask=PretrainTask,
        PRECISIONS=PRECISIONS,
        apply_speed_options=apply_speed_options,
        TimedTrainer=TimedTrainer,
    )


def bare_loop(cfg, groups: list[list[dict]], warmup: int, threads: int) -> tuple[float, float]:
    """(audio seconds, wall seconds) of a bare forward+backward+clip+step loop over ``groups``.

    The model, optimizer, precision, compilation and speed options (set by the trainer's own
    ``apply_speed_options``, the allocator's included, so run it in a process of its own) are
    the config's; the first ``warmup`` updates are run but not timed. No data loading, RNG
    reseeding, metrics or logging.
    """
    torch.set_num_threads(threads)
    layer = _import_trainer()
    torch.manual_seed(cfg.trainer.seed)
    task = layer.PretrainTask(cfg)
    model = task.build_model()
    model.train()
    layer.apply_speed_options(model, cfg.trainer, torch.device("cpu"))
    optimizer = layer.build_optimizer(model, cfg.optim)
    step_model = torch.compile(model) if cfg.trainer.compile else model
    dtype = layer.PRECISIONS[cfg.trainer.precision]
    clip = cfg.optim.clip_grad_norm if cfg.optim.clip_grad_norm > 0 else math.inf
    audio = seconds = 0.0
    for i, group in enumerate(groups):
        start = time.perf_counter()
        model.set_num_updates(i)
        for batch in group:
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                out = step_model(batch["waveforms"], batch["padding_mask"])
            (out.loss.float() * out.sample_size).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            seconds += time.perf_counter() - start
            audio += sum(b["waveforms"].numel() for b in group) / SR
    return audio, seconds


def _in_fresh_process(fn, *args):
    """``fn(*args)`` in a spawned process of its own (not daemonic: the trainer starts
    data-loader workers); for what changes a process for good (the allocator, oneDNN's
    kernel cache) or must start cold."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(fn, *args).result()


def run_trainer(
    config: Path,
    overrides: list[str],
    threads: int | None,
    updates: int,
    warmup: int,
    bare_updates: int,
) -> dict:
    """Train ``updates`` updates of ``config`` (plus ``overrides``) with the real trainer.

    Returns the per-update records (loss, audio seconds, wall seconds), the trainer's
    audio-seconds/s after ``warmup`` updates, and, when ``bare_updates`` > 0, the same
    throughput of the trainer and of :func:`bare_loop` over the ``bare_updates`` updates that
    follow the warm-up. The bare loop runs in a process of its own on the trainer's first
    ``warmup + bare_updates`` batches and times the same updates the trainer's figure
    covers, so both start cold: kernels to build, memory to fault in.
    """
    layer = _import_trainer()
    if updates <= warmup:
        raise ValueError(f"--updates ({updates}) must be more than --warmup ({warmup})")
    manifests = config.parent.parent / "data" / "manifests"
    cfg = layer.load_config(
        config,
        [
            f"data.manifest_dir={manifests}",
            f"trainer.max_updates={updates}",
            "trainer.progress=false",
            "trainer.device=cpu",
            *overrides,
        ],
    )
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="train_speed_") as exp_dir:
            bare = min(bare_updates, updates - warmup)
            keep = warmup + bare if bare else 0
            trainer = layer.TimedTrainer(cfg, layer.PretrainTask(cfg), exp_dir, keep=keep)
            trainer.fit()
        timed = trainer.records[warmup:]
        result = {
            "records": trainer.records,
            "threads": torch.get_num_threads(),
            "audio_s_per_s": sum(r["audio"] for r in timed) / sum(r["seconds"] for r in timed),
        }
        if bare:
            same = trainer.records[warmup : warmup + bare]
            audio, seconds = _in_fresh_process(
                bare_loop, cfg, trainer.kept, warmup, torch.get_num_threads()
            )
            result["trainer_same_batches"] = sum(r["audio"] for r in same) / sum(
                r["seconds"] for r in same
            )
            result["bare_audio_s_per_s"] = audio / seconds
    finally:
        torch.set_num_threads(saved_threads)
    return result


def window_means(losses: list[float], window: int) -> list[float]:
    """Means of consecutive ``window``-update blocks of a loss curve (a last partial block
    is dropped)."""
    starts = range(0, len(losses) - window + 1, window)
    return [statistics.fmean(losses[i : i + window]) for i in starts]


def trainer_main(args: argparse.Namespace) -> None:
    """``--trainer``: every setting of ``--settings`` through the real trainer; a table."""
    config = Path(args.config)
    manifests = config.parent.parent / "data" / "manifests"
    if not any(manifests.glob("*pretrain*.jsonl.gz")):
        sys.exit(
            f"train_speed.py --trainer: no pretraining cuts in {manifests}; make the synth "
            f"corpus first: cd {config.parent.parent} && ./prepare.sh --bpe-vocab-sizes ''"
        )
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown:
        sys.exit(f"train_speed.py --settings: unknown {unknown}; choose from {list(SETTINGS)}")
    updates = args.updates or 300
    warmup = 10 if args.warmup is None else args.warmup
    window = min(args.loss_window, updates)
    print(
        f"device: {_cpu_name()}, {torch.get_num_threads()} torch threads by default; config "
        f"{config}; {updates} updates per setting, throughput after {warmup}; loss over the "
        f"last {window} updates; bare loop on {args.bare_updates} of the same batches; "
        f"torch {torch.__version__}",
        flush=True,
    )
    runs: dict[str, list[dict]] = {name: [] for name in args.settings}
    for repeat in range(args.repeats):
        for name in args.settings:
            overrides, threads = SETTINGS[name]
            r = _in_fresh_process(
                run_trainer, config, overrides, threads, updates, warmup, args.bare_updates
            )
            runs[name].append(r)
            losses = [x["loss"] for x in r["records"]]
            print(
                f"measured (repeat {repeat + 1}/{args.repeats}): {name} "
                f"{r['audio_s_per_s']:.1f} audio-s/s, loss over the last {window} updates "
                f"{statistics.fmean(losses[-window:]):.4f}",
                flush=True,
            )
    rows = [_median_row(name, runs, args.settings[0], window) for name in args.settings]
    ref = rows[0]
    print(
        f"| setting | overrides | threads | audio-s/s | / {ref['name']} | loss, last {window} "
        f"updates | gap to {ref['name']} | largest gap of a {window}-update mean | "
        "bare loop audio-s/s | trainer / bare |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gaps = [abs(a - b) for a, b in zip(r["curve"], ref["curve"], strict=True)]
        bare = r.get("bare_audio_s_per_s")
        share = "-" if bare is None else f"{r['share']:.2f}"
        print(
            f"| {r['name']} | {r['overrides']} | {r['threads']} | {r['audio_s_per_s']:.1f} | "
            f"{r['ratio']:.2f} | {r['final_loss']:.4f} | "
            f"{r['final_loss'] - ref['final_loss']:+.4f} | {max(gaps):.4f} | "
            f"{'-' if bare is None else f'{bare:.1f}'} | {share} |",
            flush=True,
        )
    if args.repeats > 1:
        print(
            f"medians of {args.repeats} interleaved runs; a ratio is the median of each "
            f"round's ratio. audio-s/s of each run: "
            + "; ".join(
                f"{name} " + ", ".join(f"{r['audio_s_per_s']:.1f}" for r in runs[name])
                for name in args.settings
            )
        )


def _median_row(name: str, runs: dict[str, list[dict]], ref: str, window: int) -> dict:
    """One setting's table row from its runs: medians of the throughputs, of the ratio to the
    ``ref`` setting's run of the same round and of trainer / bare; the first run's loss curve
    (a setting's runs train the same updates, so their losses agree to rounding)."""
    mine = runs[name]
    r = dict(mine[0])
    r["name"], r["overrides"] = name, " ".join(SETTINGS[name][0]) or "(config as is)"
    losses = [x["loss"] for x in r["records"]]
    r["final_loss"] = statistics.fmean(losses[-window:])
    r["curve"] = window_means(losses, window)
    r["audio_s_per_s"] = statistics.median([x["audio_s_per_s"] for x in mine])
    r["ratio"] = statistics.median(
        [x["audio_s_per_s"] / y["audio_s_per_s"] for x, y in zip(mine, runs[ref], strict=True)]
    )
    if "bare_audio_s_per_s" in r:
        r["bare_audio_s_per_s"] = statistics.median([x["bare_audio_s_per_s"] for x in mine])
        shares = [x["trainer_same_batches"] / x["bare_audio_s_per_s"] for x in mine]
        r["share"] = statistics.median(shares)
    return r


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


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
    parser.add_argument("--updates", type=int, help="timed updates (default 5; --trainer: 300)")
    parser.add_argument(
        "--warmup", type=int, help="untimed updates first (default 2; --trainer: 10)"
    )
    parser.add_argument(
        "--trainer",
        action="store_true",
        help="run the real Trainer on --config with the synth corpus, once per --settings",
    )
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="--trainer: pretraining YAML")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["exact", "exact-seed2", "fp32", "bf16", "workers0"],
        help=f"--trainer: the first is the reference; choose from {', '.join(SETTINGS)}",
    )
    parser.add_argument(
        "--loss-window", type=int, default=50, help="--trainer: updates per loss mean"
    )
    parser.add_argument(
        "--bare-updates",
        type=int,
        default=30,
        help="--trainer: updates after the warm-up that the bare loop repeats (0: none)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure every model (--trainer: setting) this many times, interleaved, and "
        "report the medians (fairer on a shared or drifting machine)",
    )
    args = parser.parse_args()
    if args.trainer:
        trainer_main(args)
        return
    args.updates = 5 if args.updates is None else args.updates
    args.warmup = 2 if args.warmup is None else args.warmup
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
