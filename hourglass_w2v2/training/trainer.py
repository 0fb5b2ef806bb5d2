"""The one training loop, shared by pretraining and CTC fine-tuning.

A :class:`~hourglass_w2v2.training.task.Task` supplies the model, the data and
``compute_loss(model, batch)``; the
:class:`Trainer` owns everything else: optimizer and schedule, mixed precision, gradient
accumulation, DDP, clipping, non-finite handling, logging, validation, checkpoints and resume.

Reproducibility rules the loop is built on:

- the batches of an update depend only on the global batch (see ``training/sampling.py``);
- before each micro-batch, torch/numpy/python RNGs are seeded from ``(seed, epoch, step,
  shard)`` (as fairseq does per update), so masking, negatives, Gumbel noise and dropout are
  the same whether a shard runs on its own GPU or as an accumulation step;
- micro-batch losses are weighted by their ``sample_size`` and the summed gradient is divided
  by the global ``sample_size``, so accumulation and DDP give the same gradient.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hourglass_w2v2.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    rotate_checkpoints,
    set_aside,
)
from hourglass_w2v2.fileio import atomic_save, atomic_write_text, remove_stale_temp_files
from hourglass_w2v2.models import SAMPLE_RATE
from hourglass_w2v2.training.allocator import reuse_freed_memory
from hourglass_w2v2.training.config import (
    ExperimentConfig,
    TrainerConfig,
    config_changes,
    may_change_on_resume,
)
from hourglass_w2v2.training.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_sum,
    all_reduce_sum_by_name,
    barrier,
    broadcast_object,
    setup_distributed,
)
from hourglass_w2v2.training.logs import setup_logging
from hourglass_w2v2.training.onednn import enable_onednn_linear
from hourglass_w2v2.training.optim import build_optimizer, build_scheduler
from hourglass_w2v2.training.rng import rng_state, seed_everything, set_rng_state, shard_seed
from hourglass_w2v2.training.sampling import UpdateBatchSampler
from hourglass_w2v2.training.task import Task

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# the loop's own sums next to the task's metrics; a task's metric names never start with "_"
_LOSS, _SIZE, _AUDIO, _STOP = "_loss", "_sample_size", "_audio_seconds", "_stop_signal"


class NonFiniteError(RuntimeError):
    """Too many updates in a row had a non-finite loss or gradient."""


class HealthError(RuntimeError):
    """The health monitor found a failure and ``health.stop_on_failure`` is set."""


class ResumeError(RuntimeError):
    """The experiment directory holds checkpoints, but training cannot go on from them."""


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Turn on the model's ``checkpoint_layers`` (``trainer.activation_checkpointing``).

    Every transformer layer then recomputes its activations in backward instead of storing
    them, with the same dropout draws; the extractor has its own ``model.checkpoint_extractor``.
    Returns how many layers are checkpointed.
    """
    from hourglass_w2v2.models.encoder import TransformerEncoder

    encoders = [m for m in model.modules() if isinstance(m, TransformerEncoder)]
    for encoder in encoders:
        encoder.checkpoint_layers = True
    return sum(len(encoder.layers) for encoder in encoders)


def enable_polyphase_backward(model: nn.Module) -> int:
    """Turn on ``polyphase_backward`` in the conv blocks of the model's feature extractor
    (``trainer.polyphase_conv_backward``) unless the extractor is checkpointed (its selective
    policy reads the plain convolutions). Returns how many blocks it turned on."""
    from hourglass_w2v2.models.extractor import FeatureExtractor

    blocks = [
        block
        for m in model.modules()
        if isinstance(m, FeatureExtractor) and not m.checkpoint
        for block in m.conv_layers
    ]
    for block in blocks:
        block.polyphase_backward = True
    return len(blocks)


def apply_speed_options(model: nn.Module, t: TrainerConfig, device: torch.device) -> None:
    """The trainer options that change how ``model`` (on ``device``) and this process compute,
    not what: activation checkpointing, polyphase conv backward, glibc's buffer reuse and
    oneDNN linear layers (CPU only). Logs what each one did."""
    if t.activation_checkpointing:
        n = enable_activation_checkpointing(model)
        logging.info("activation checkpointing on %d transformer layers", n)
    if t.polyphase_conv_backward:
        n = enable_polyphase_backward(model)
        logging.info("polyphase input gradients in %d extractor conv blocks", n)
    if t.reuse_freed_memory and reuse_freed_memory():
        logging.info("glibc keeps freed buffers up to 32 MiB for reuse (no heap trimming)")
    if t.onednn_linear and device.type == "cpu":
        n = enable_onednn_linear(model)
        if n:
            logging.info("oneDNN fp32 GEMMs in %d linear layers", n)
        else:
            logging.info(
                "trainer.onednn_linear: oneDNN would compute fp32 matmuls in bf16 on this "
                "CPU; the linear layers keep torch's GEMM"
            )


def derive_accum_grad(cfg: ExperimentConfig, world_size: int) -> int:
    """Accumulation steps so that ``world_size x accum x max_duration`` is the global batch."""
    t = cfg.trainer
    if t.global_batch_duration is None:
        return max(1, t.accum_grad)
    shards = t.global_batch_duration / cfg.data.max_duration
    accum = shards / world_size
    if accum < 1 or abs(accum - round(accum)) > 1e-6:
        raise ValueError(
            f"trainer.global_batch_duration={t.global_batch_duration} s is not a multiple of "
            f"world_size ({world_size}) x data.max_duration ({cfg.data.max_duration} s); "
            f"pick a max_duration that divides {t.global_batch_duration / world_size:g} s"
        )
    return int(round(accum))


class Trainer:
    """Runs ``cfg.trainer.max_updates`` updates of ``task`` in ``exp_dir``, resuming if it can.

    When ``exp_dir`` holds checkpoints and none of them loads, it refuses to start unless
    ``restart_from_scratch`` is set; then the unreadable ones are set aside (``*.corrupt``).
    It refuses to resume a checkpoint trained with another config, unless
    ``allow_config_change`` is set (see :data:`~hourglass_w2v2.training.config.RESUME_MAY_CHANGE`
    for what may change).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        task: Task,
        exp_dir: str | Path,
        restart_from_scratch: bool = False,
        allow_config_change: bool = False,
    ) -> None:
        self.cfg = cfg
        self.task = task
        self.exp_dir = Path(exp_dir)
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.dist: DistInfo = setup_distributed(cfg.trainer.device)
        self.accum_grad = derive_accum_grad(cfg, self.dist.world_size)
        self.update = 0
        self.epoch = 0
        self.step_in_epoch = 0  # attempted updates this epoch (skipped ones included)
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.corrupt_skipped = 0  # cuts of this rank whose audio could not be read
        self.train_seconds = 0.0
        self.audio_seconds = 0.0
        self.best_valid: float | None = None
        self.last_metrics: dict[str, float] = {}
        self._stop_signal: int | None = None
        self.ddp: DistributedDataParallel | None = None  # set by _wrap() under torchrun
        self.restart_from_scratch = restart_from_scratch
        self.allow_config_change = allow_config_change

    # ------------------------------------------------------------------ set-up
    def _build(self) -> None:
        cfg, t = self.cfg, self.cfg.trainer
        seed_everything(t.seed)
        self.model = self.task.build_model().to(self.dist.device)
        self.raw_model = self.model
        apply_speed_options(self.model, t, self.dist.device)
        self.num_params = sum(p.numel() for p in self.raw_model.parameters())
        # the model section resolved to every ModelConfig field: rerunnable as it stands
        self.resolved_config = {**cfg.to_dict(), "model": self.raw_model.cfg.to_dict()}
        self.optimizer = build_optimizer(self.raw_model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.optim, t.max_updates)
        if t.precision not in PRECISIONS:
            raise ValueError(
                f"trainer.precision must be one of {list(PRECISIONS)}, got {t.precision!r}"
            )
        self.amp_dtype = PRECISIONS[t.precision]
        # fairseq's fp16 starts the loss scale at 128; 2**16 wastes updates calibrating.
        self.scaler = torch.amp.GradScaler(
            self.dist.device.type, init_scale=128.0, enabled=t.precision == "fp16"
        )
        self.dataset, sampler = self.task.train_data()
        self.batches = UpdateBatchSampler(
            sampler, self.dist.world_size, self.dist.rank, self.accum_grad
        )

    def _wrap(self) -> None:
        t = self.cfg.trainer
        if self.dist.world_size > 1:
            self.model = self.ddp = DistributedDataParallel(
                self.model,
                device_ids=[self.dist.local_rank] if self.dist.device.type == "cuda" else None,
                find_unused_parameters=t.find_unused_parameters,
            )
        if t.compile:
            self.model = torch.compile(self.model)

    def _resume(self) -> bool:
        """Load the newest checkpoint that loads; set aside the unreadable ones newer than it.

        Rank 0 picks the checkpoint and every rank loads that file: a rank looking for itself
        could find another newest one (a file system listing a new file late on one node, a
        damaged copy) and go on from another update. Without any loadable one, starting afresh
        would let checkpoint rotation keep the unreadable files (they sort as newest) and
        delete every new checkpoint, so it is refused unless ``restart_from_scratch`` is set.
        """
        listed, found = [], None
        if self.dist.is_main:
            listed = [p.name for _, p in list_checkpoints(self.ckpt_dir)]
            found = load_latest(self.ckpt_dir)
        listed, chosen = broadcast_object((listed, found[1].name if found else None))
        existing = [self.ckpt_dir / name for name in listed]
        error = None
        if not self.dist.is_main and chosen is not None:
            try:
                found = load_checkpoint(self.ckpt_dir / chosen), self.ckpt_dir / chosen
            except CheckpointError as e:
                error = str(e)
        # every rank has read its file before rank 0 renames any, and all stop on one's error
        for rank, e in enumerate(all_gather_object(error)):
            if e is not None:
                raise ResumeError(
                    f"rank {rank} cannot read {self.ckpt_dir / chosen}, the checkpoint rank 0 "
                    f"resumes from ({e}); every node must see the same --exp-dir (a shared "
                    "file system)"
                )
        if found is None and existing and not self.restart_from_scratch:
            raise ResumeError(
                f"no checkpoint in {self.ckpt_dir} can be loaded "
                f"({', '.join(p.name for p in existing)}: see the errors above); to train "
                "from update 0 in this directory, setting them aside as *.corrupt, rerun with "
                "--restart-from-scratch, or use another --exp-dir"
            )
        unreadable = existing if found is None else existing[existing.index(found[1]) + 1 :]
        if self.dist.is_main:
            for path in unreadable:
                logging.warning("set aside unreadable checkpoint %s as %s", path, set_aside(path))
        if found is None:
            if existing:
                logging.warning("--restart-from-scratch: training from update 0")
            return False
        ckpt, path = found
        self._check_config_changes(ckpt.get("config"), path)
        if ckpt["update"] > self.cfg.trainer.max_updates:
            raise ResumeError(
                f"{path} is at update {ckpt['update']}, past this run's "
                f"trainer.max_updates={self.cfg.trainer.max_updates}: a run cannot be shortened "
                "(its config.yaml would describe a model it does not hold); use another "
                "--exp-dir, or --init a fine-tuning from one of its checkpoints"
            )
        logging.info("resuming from %s (update %d)", path, ckpt["update"])
        self.raw_model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        # the schedule is this run's (trainer.max_updates may have grown), at the update reached;
        # LambdaLR.load_state_dict writes the saved plan into its lambda objects, so keep copies
        planned = (
            list(self.scheduler.base_lrs),
            [copy.copy(factor) for factor in self.scheduler.lr_lambdas],
        )
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scheduler.base_lrs, self.scheduler.lr_lambdas = planned
        for group, base, factor in zip(self.optimizer.param_groups, *planned, strict=True):
            group["initial_lr"] = base
            group["lr"] = base * factor(self.scheduler.last_epoch)
        self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.update, self.epoch = ckpt["update"], ckpt["epoch"]
        sampler_state = ckpt["sampler"]
        if sampler_state["num_shards"] != self.batches.num_shards:
            raise ResumeError(
                f"{path} was trained with {sampler_state['num_shards']} batches per update, this "
                f"run has {self.batches.num_shards} (world_size x accum_grad); keep the global "
                "batch and data.max_duration unchanged to resume"
            )
        self.step_in_epoch = sampler_state["step_in_epoch"]
        rngs = ckpt["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            logging.warning(
                "checkpoint has RNG states of %d processes, running %d: not restored",
                len(rngs),
                self.dist.world_size,
            )
        state = ckpt["metrics"].get("trainer", {})
        self.train_seconds = state.get("train_seconds", 0.0)
        self.audio_seconds = state.get("audio_seconds", 0.0)
        self.nonfinite_total = state.get("nonfinite_total", 0)
        self.best_valid = state.get("best_valid")
        if self.task.health is not None and "health" in state:
            self.task.health.load_state_dict(state["health"])
        return True

    def _check_config_changes(self, saved: dict[str, Any] | None, path: Path) -> None:
        """Refuse to resume a run whose config changed what its updates compute (another seed,
        model, data, optimizer or schedule), unless ``allow_config_change``: the experiment dir
        would hold two runs under one name. What may change is logged."""
        changes = config_changes(saved or {}, self.resolved_config)
        fixed = [c for c in changes if not may_change_on_resume(c[0])]
        if fixed and not self.allow_config_change:
            listed = "; ".join(f"{key}: {old!r} there, {new!r} here" for key, old, new in fixed)
            raise ResumeError(
                f"{path} was trained with another config than this run's ({listed}); going on "
                f"from it would mix two runs in {self.exp_dir}. Use another --exp-dir for the "
                "new config, or rerun with --allow-config-change (run.sh: "
                "--allow-config-change true) to go on from this checkpoint with the new values"
            )
        for key, old, new in changes:
            level = logging.INFO if may_change_on_resume(key) else logging.WARNING
            logging.log(level, "resuming with %s changed: %r -> %r", key, old, new)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict[str, Any]:
        """The full checkpoint dict (every key of ``CHECKPOINT_KEYS``); collective under DDP."""
        rngs = all_gather_object(rng_state())
        trainer_state = {
            "train_seconds": self.train_seconds,
            "audio_seconds": self.audio_seconds,
            "nonfinite_total": self.nonfinite_total,
            "best_valid": self.best_valid,
        }
        if self.task.health is not None:
            trainer_state["health"] = self.task.health.state_dict()
        return {
            "model": self.raw_model.state_dict(),
            "model_config": self.raw_model.cfg.to_dict(),
            **self.task.checkpoint_fields(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            "sampler": {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "num_shards": self.batches.num_shards,
            },
            "rng": rngs,
            "update": self.update,
            "epoch": self.epoch,
            "config": self.resolved_config,
            "metrics": {"last": dict(self.last_metrics), "trainer": trainer_state},
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``ckpt-<update>.pt`` (rank 0), rotate old ones, refresh ``train_info.json``."""
        state = self.checkpoint_state()
        path = self.ckpt_dir / f"ckpt-{self.update}.pt"
        if self.dist.is_main:
            atomic_save(state, path)
            for old in rotate_checkpoints(
                self.ckpt_dir, self.cfg.trainer.keep_last, self.cfg.trainer.keep_every, keep=path
            ):
                logging.info("removed old checkpoint %s", old.name)
            self.write_train_info()
            logging.info("saved %s", path)
        barrier()
        return path if self.dist.is_main else None

    def write_train_info(self) -> None:
        """``train_info.json``: size, updates, hours and init, for the results table."""
        info = {
            "num_params": self.num_params,
            "updates": self.update,
            "train_hours": self.train_seconds / 3600,
            "audio_hours_seen": self.audio_seconds / 3600,
            "init": self.task.init_description(),
        }
        atomic_write_text(self.exp_dir / "train_info.json", json.dumps(info, indent=2) + "\n")

    def write_config(self) -> None:
        """``config.yaml``: the resolved config, every model field included."""
        text = yaml.safe_dump(self.resolved_config, sort_keys=False)
        atomic_write_text(self.exp_dir / "config.yaml", text)

    def _start_files(self) -> None:
        """Rank 0, before training: clear temp files of a killed save, and cut the metrics log
        back to the resumed update, whose later lines the coming updates write again."""
        for directory in (self.exp_dir, self.ckpt_dir):
            for p in remove_stale_temp_files(directory):
                logging.warning("removed %s, left by a save that was interrupted", p)
        metrics = self.exp_dir / "log" / "train_metrics.jsonl"
        if not metrics.is_file():
            return
        kept, dropped = [], 0
        for line in metrics.read_text().splitlines():
            try:
                keep = json.loads(line)["update"] <= self.update
            except (ValueError, KeyError, TypeError):
                keep = False  # a line cut short by a kill
            if keep:
                kept.append(line + "\n")
            else:
                dropped += 1
        if dropped:
            atomic_write_text(metrics, "".join(kept))
            logging.info(
                "%s: dropped %d lines past update %d (written again as training goes on)",
                metrics,
                dropped,
                self.update,
            )

    # ------------------------------------------------------------------ the loop
    def _micro_batches(self) -> Iterator[list[dict]]:
        """This rank's micro-batches, ``accum_grad`` per update, for the rest of the epoch."""
        d = self.cfg.data
        self.batches.set_epoch(self.epoch, skip_steps=self.step_in_epoch)
        if hasattr(self.dataset, "set_epoch"):  # pretraining: new crop offsets every epoch
            self.dataset.set_epoch(self.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset,
            sampler=self.batches,
            batch_size=None,
            num_workers=d.num_workers,
            persistent_workers=False,
            pin_memory=self.dist.device.type == "cuda",
            # its own generator, so creating workers never consumes the global torch RNG
            generator=torch.Generator().manual_seed(self.cfg.trainer.seed + self.epoch),
        )
        group: list[dict] = []
        for batch in loader:
            group.append(batch)
            if len(group) == self.accum_grad:
                yield group
                group = []

    def _to_device(self, batch: dict) -> dict:
        return {
            k: v.to(self.dist.device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()
        }

    def train_step(self, group: list[dict]) -> dict[str, float] | None:
        """One update over this rank's micro-batches; None when it was skipped (non-finite)."""
        t = self.cfg.trainer
        self.model.train()
        self.task.set_num_updates(self.raw_model, self.update)
        device = self.dist.device
        autocast = (
            torch.autocast(device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else nullcontext()
        )
        keys: list[str] = []
        sums: dict[str, torch.Tensor] = defaultdict(
            lambda: torch.zeros((), device=device, dtype=torch.float64)
        )
        for i, batch in enumerate(group):
            shard = self.dist.rank * self.accum_grad + i
            seed_everything(shard_seed(t.seed, self.epoch, self.step_in_epoch, shard))
            batch = self._to_device(batch)
            # all-reduce the gradients once per update, after the last micro-batch
            sync = self.ddp is None or i == len(group) - 1
            with nullcontext() if sync else self.ddp.no_sync():
                with autocast:
                    loss, metrics = self.task.compute_loss(self.model, batch)
                n = torch.as_tensor(metrics["sample_size"], dtype=torch.float32, device=device)
                self.scaler.scale(loss.float() * n).backward()
            keys = keys or sorted(k for k in metrics if k != "sample_size")
            for k in keys:
                value = torch.as_tensor(metrics[k], device=device).detach().double().reshape(())
                sums[k] += value * n
            sums[_LOSS] += loss.detach().double() * n
            sums[_SIZE] += n
            sums[_AUDIO] += batch["waveforms"].shape[0] * batch["waveforms"].shape[1] / SAMPLE_RATE
            self.corrupt_skipped += batch.get("num_skipped", 0)  # data.skip_corrupt
        sums[_STOP] += float(self._stop_signal is not None)
        reduced = all_reduce_sum_by_name(sums)
        # DDP averaged the gradients over ranks; undo that and normalise by the global size.
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.raw_model.parameters() if p.grad is not None]
        grads = [p.grad for p in params]
        if grads:
            scale = self.dist.world_size / max(reduced[_SIZE], 1.0)
            torch._foreach_mul_(grads, torch.tensor(scale, dtype=torch.float32, device=device))
        max_norm = self.cfg.optim.clip_grad_norm if self.cfg.optim.clip_grad_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        finite = math.isfinite(float(grad_norm)) and math.isfinite(reduced[_LOSS])
        lr = self.optimizer.param_groups[0]["lr"]
        if finite:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_in_epoch += 1
        self.audio_seconds += reduced[_AUDIO]
        if reduced[_STOP] > 0 and self._stop_signal is None:
            self._stop_signal = signal.SIGTERM  # another rank was signalled
        if not finite:
            self.nonfinite_in_a_row += 1
            self.nonfinite_total += 1
            logging.warning(
                "update %d: non-finite loss or gradient (grad norm %s); skipped (%d in a row, "
                "%d in total)",
                self.update + 1,
                float(grad_norm),
                self.nonfinite_in_a_row,
                self.nonfinite_total,
            )
            if self.nonfinite_in_a_row >= t.max_consecutive_nonfinite:
                raise NonFiniteError(
                    f"{self.nonfinite_in_a_row} updates in a row had a non-finite loss or "
                    f"gradient (last at update {self.update + 1}); lower optim.lr, use "
                    "trainer.precision=bf16/fp32, or check the data"
                )
            return None
        self.nonfinite_in_a_row = 0
        self.update += 1
        self.scheduler.step()
        size = max(reduced[_SIZE], 1.0)
        out = {k: reduced[k] / size for k in keys}
        out["loss"] = reduced[_LOSS] / size
        out["sample_size"] = reduced[_SIZE]
        out["grad_norm"] = float(grad_norm)
        out["lr"] = lr
        out["audio_seconds"] = reduced[_AUDIO]
        return out

    def _install_signal_handlers(self) -> dict:
        """Turn SIGTERM/SIGINT into "checkpoint after this update and exit"; return the old."""

        def handler(signum, frame):
            logging.warning("received signal %d: checkpointing after this update", signum)
            self._stop_signal = signum

        return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def fit(self) -> dict[str, float]:
        """Train until ``max_updates`` (or ``max_epochs``, or a signal); return last metrics."""
        t = self.cfg.trainer
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        log_path = setup_logging(self.exp_dir / "log", self.dist.rank, f"train-{self.task.name}")
        self._build()
        resumed = self._resume()
        self._wrap()
        main = self.dist.is_main
        if main:
            self._start_files()
            self.write_config()
            logging.info("log: %s", log_path)
            logging.info(
                "%s: %d parameters, %d process(es) x accum %d x max_duration %g s per update, "
                "precision %s, device %s%s",
                self.task.name,
                self.num_params,
                self.dist.world_size,
                self.accum_grad,
                self.cfg.data.max_duration,
                t.precision,
                self.dist.device,
                f", resumed at update {self.update}" if resumed else "",
            )
        with ExitStack() as stack:
            self._writer = self._metrics_log = self._bar = None
            if main:
                from torch.utils.tensorboard import SummaryWriter

                # tensorboard hides the steps >= purge_step of the earlier event files: those
                # after the resumed checkpoint, which this run writes again (not the update the
                # checkpoint was saved at, logged before the save)
                self._writer = SummaryWriter(
                    str(self.exp_dir / "tensorboard"),
                    purge_step=self.update + 1 if self.update else None,
                )
                stack.callback(self._writer.close)
                self._metrics_log = stack.enter_context(
                    (self.exp_dir / "log" / "train_metrics.jsonl").open("a")
                )
                if t.progress:
                    from tqdm import tqdm
                    from tqdm.contrib.logging import logging_redirect_tqdm

                    self._bar = stack.enter_context(
                        tqdm(
                            total=t.max_updates,
                            initial=self.update,
                            desc=self.task.name,
                            unit="upd",
                            dynamic_ncols=True,
                            disable=None,  # no bar when stderr is not a terminal (logs, CI)
                        )
                    )
                    stack.enter_context(logging_redirect_tqdm())
            old_handlers = self._install_signal_handlers()
            stack.callback(lambda: [signal.signal(s, h) for s, h in old_handlers.items()])
            if self.update >= t.max_updates:
                logging.info("already trained for %d updates", self.update)
            elif not self._train_loop(last_saved=self.update if resumed else -1):
                return self.last_metrics  # stopped by a signal, checkpoint written
            if main:
                self.write_train_info()
                self.task.on_train_end(self)
            barrier()
        logging.info(
            "done: %d updates, %.2f h of audio seen", self.update, self.audio_seconds / 3600
        )
        return self.last_metrics

    def _train_loop(self, last_saved: int) -> bool:
        """Epochs of updates with validation and checkpoints; False when a signal stopped it."""
        t = self.cfg.trainer
        while self.update < t.max_updates and self.epoch < t.max_epochs:
            tick = time.perf_counter()
            for group in self._micro_batches():
                out = self.train_step(group)
                now = time.perf_counter()
                self.train_seconds += now - tick
                if out is not None:
                    out["audio_seconds_per_second"] = out["audio_seconds"] / max(now - tick, 1e-9)
                    out["nonfinite_skipped"] = self.nonfinite_total
                    out["corrupt_cuts_skipped"] = self.corrupt_skipped
                    out["peak_memory_gb"] = self._peak_memory_gb()
                    self.last_metrics = out
                    self._after_update(out)
                    if self._stop_signal is None:
                        if t.valid_interval > 0 and self.update % t.valid_interval == 0:
                            self.run_validation()
                        if self.update % t.save_interval == 0:
                            self.save_checkpoint()
                            last_saved = self.update
                if self._stop_signal is not None:
                    logging.warning(
                        "stopping on signal %d at update %d", self._stop_signal, self.update
                    )
                    if last_saved != self.update:
                        self.save_checkpoint()
                    return False
                if self.update >= t.max_updates:
                    break
                tick = time.perf_counter()
            else:
                self.epoch += 1
                self.step_in_epoch = 0
        if t.valid_interval == 0 or self.update % t.valid_interval != 0:
            self.run_validation()
        if last_saved != self.update:
            self.save_checkpoint()
        return True

    def _peak_memory_gb(self) -> float:
        if self.dist.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.dist.device) / 2**30
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB

    def _after_update(self, out: dict) -> None:
        """Log an update (rank 0) and judge its health (every rank, on the same metrics)."""
        t = self.cfg.trainer
        health = self.task.health
        events = health.update(self.update, out) if health is not None else []
        if self.dist.is_main:
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix(
                    loss=f"{out['loss']:.3f}", lr=f"{out['lr']:.2e}", refresh=False
                )
            for e in events:
                logging.warning("health (update %d): %s", self.update, e.message)
                self._writer.add_scalar(f"health/{e.kind}", 1.0, self.update)
            if self.update % t.log_interval == 0 or self.update == 1:
                for k, v in out.items():
                    self._writer.add_scalar(f"train/{k}", v, self.update)
                self._metrics_log.write(json.dumps({"update": self.update, **out}) + "\n")
                self._metrics_log.flush()
                shown = " ".join(f"{k}={v:.4g}" for k, v in out.items() if k != "audio_seconds")
                logging.info("epoch %d update %d: %s", self.epoch, self.update, shown)
        fatal = [e for e in events if e.fatal]
        if fatal and self.cfg.health.stop_on_failure:
            self.save_checkpoint()  # collective: every rank reaches it, as all see `fatal`
            raise HealthError("; ".join(e.message for e in fatal))

    def run_validation(self) -> dict[str, float]:
        """Validate on rank 0 (others wait); keep ``best.pt`` when the task's metric improves."""
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            model = self.raw_model
            was_training = model.training
            model.eval()
            with torch.no_grad():
                metrics = self.task.validate(model)
            model.train(was_training)
            for k, v in metrics.items():
                self._writer.add_scalar(f"valid/{k}", v, self.update)
            if metrics:
                logging.info(
                    "validation at update %d: %s",
                    self.update,
                    " ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
                )
        key = self.task.best_metric
        improved = torch.zeros(1, device=self.dist.device)
        score = self.task.selection_score(metrics) if self.dist.is_main else None
        if score is not None and (self.best_valid is None or score < self.best_valid):
            self.best_valid = score
            improved[0] = 1
        if key is not None and float(all_reduce_sum(improved)) > 0:
            state = self.checkpoint_state()
            if self.dist.is_main:
                atomic_save(state, self.ckpt_dir / "best.pt")
                logging.info(
                    "new best %s=%.4g at update %d -> best.pt", key, self.best_valid, self.update
                )
        barrier()
        return metrics
