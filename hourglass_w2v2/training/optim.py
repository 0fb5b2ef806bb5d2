"""Optimizer with weight-decay parameter groups, and the two learning-rate schedules.

Both schedules are ``torch.optim.lr_scheduler.LambdaLR`` over a small picklable factor object,
so their state is the ordinary scheduler ``state_dict`` and resume needs nothing special.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hourglass_w2v2.training.config import OptimConfig, ScheduleConfig

#: ``optim.weight_decay_exempt`` settings
WEIGHT_DECAY_EXEMPT = ("none", "bias_norm")


def _decayed(name: str, param: nn.Parameter, exempt: str) -> bool:
    """Whether ``param`` gets weight decay under the ``exempt`` setting."""
    if exempt == "none":
        return True
    return not (param.ndim < 2 or name.endswith(".bias") or "norm" in name.lower())


def param_groups(
    model: nn.Module,
    weight_decay: float,
    lr: float,
    layer_lr_decay: float = 1.0,
    exempt: str = "bias_norm",
) -> list[dict]:
    """Split trainable parameters into weight-decay groups and, with ``layer_lr_decay`` < 1,
    by depth.

    ``exempt`` says which parameters get no weight decay. ``"none"``: every parameter decays,
    as fairseq's ``adam`` (one parameter group) does in wav2vec 2.0 pretraining.
    ``"bias_norm"`` (nanoGPT-like): biases, parameters with "norm" in their name and every
    1-D parameter (norm gains, ``mask_emb``) are exempt; matrices, conv kernels and other
    >= 2-D tensors decay, including the quantizer codebook (3-D) and the positional conv's
    weight-norm gain (3-D).

    Layer-wise lr decay (BEiT, data2vec's fine-tuning): a parameter at depth ``d`` of ``D``
    (``model.layer_depth``: 0 for the extractor, ``D`` for the head) trains at
    ``lr * layer_lr_decay ** (D - d)``, so fine-tuning moves the pretrained lower layers less
    than the head. Groups are ordered from the top, so the first group's lr is the peak lr.
    """
    if exempt not in WEIGHT_DECAY_EXEMPT:
        raise ValueError(
            f"optim.weight_decay_exempt: unknown setting {exempt!r}; use one of "
            f"{', '.join(WEIGHT_DECAY_EXEMPT)}"
        )
    if not 0.0 < layer_lr_decay <= 1.0:
        raise ValueError(f"optim.layer_lr_decay must be in (0, 1], got {layer_lr_decay}")
    if layer_lr_decay < 1.0 and not hasattr(model, "layer_depth"):
        raise ValueError(f"optim.layer_lr_decay: {type(model).__name__} has no layer_depth")
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = model.layer_depth(name) if layer_lr_decay < 1.0 else 0
        groups.setdefault((depth, _decayed(name, p, exempt)), []).append(p)
    top = max((d for d, _ in groups), default=0)
    return [
        {
            "params": groups[depth, decayed],
            "weight_decay": weight_decay if decayed else 0.0,
            "lr": lr * layer_lr_decay ** (top - depth),
        }
        for depth, decayed in sorted(groups, key=lambda k: (-k[0], not k[1]))
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam (L2 weight decay added to the gradient) or AdamW (decoupled weight decay).

    fairseq's ``adam`` decays weights decoupled, so configs reproducing fairseq use ``adamw``.

    Frozen parameters (``requires_grad=False`` at build time) are left out; parameters frozen
    only temporarily (the encoder during the first fine-tuning updates) must stay trainable
    here and be skipped by the task instead.
    """
    groups = param_groups(
        model, cfg.weight_decay, cfg.lr, cfg.layer_lr_decay, cfg.weight_decay_exempt
    )
    # The fused kernels (CUDA, and CPU with optim.fused_cpu) are several times faster than the
    # per-parameter loop.
    params = [p for g in groups for p in g["params"]]
    fused = all(p.is_cuda for p in params) or (cfg.fused_cpu and all(p.is_cpu for p in params))
    kwargs = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused or None)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, **kwargs)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, **kwargs)
    raise ValueError(f"optim.optimizer: unknown optimizer {cfg.optimizer!r} (adam, adamw)")


class PolynomialDecay:
    """Linear warmup from 0 to the peak lr, then polynomial decay to ``end_lr`` at ``total``."""

    def __init__(self, warmup: int, total: int, end_scale: float, power: float) -> None:
        self.warmup, self.total, self.end_scale, self.power = warmup, total, end_scale, power

    def __call__(self, update: int) -> float:
        if self.warmup > 0 and update < self.warmup:
            return (update + 1) / self.warmup
        if update >= self.total:
            return self.end_scale
        frac = 1.0 - (update - self.warmup) / max(1, self.total - self.warmup)
        return self.end_scale + (1.0 - self.end_scale) * frac**self.power


class TriStage:
    """wav2vec 2.0 fine-tuning schedule: linear warmup, hold, exponential decay.

    The lr goes from ``init_scale`` x peak to the peak over the first phase, holds, then decays
    exponentially to ``final_scale`` x peak over the last phase and stays there.
    """

    def __init__(
        self,
        total: int,
        phase_ratio: tuple[float, float, float],
        init_scale: float,
        final_scale: float,
    ) -> None:
        if abs(sum(phase_ratio) - 1.0) > 1e-6:
            raise ValueError(f"schedule.phase_ratio must sum to 1, got {list(phase_ratio)}")
        self.warmup = int(total * phase_ratio[0])
        self.hold = int(total * phase_ratio[1])
        self.decay = int(total * phase_ratio[2])
        self.init_scale, self.final_scale = init_scale, final_scale

    def __call__(self, update: int) -> float:
        if update < self.warmup:
            return self.init_scale + (1.0 - self.init_scale) * update / self.warmup
        update -= self.warmup
        if update < self.hold:
            return 1.0
        update -= self.hold
        if update < self.decay:
            return math.exp(math.log(self.final_scale) * update / self.decay)
        return self.final_scale


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleConfig,
    optim_cfg: OptimConfig,
    max_updates: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule named by ``cfg.name``, stepped once per optimizer update."""
    if cfg.name == "polynomial":
        factor = PolynomialDecay(
            cfg.warmup_updates, max_updates, cfg.end_lr / optim_cfg.lr, cfg.power
        )
    elif cfg.name == "tri_stage":
        factor = TriStage(max_updates, cfg.phase_ratio, cfg.init_lr_scale, cfg.final_lr_scale)
    elif cfg.name == "constant":
        factor = PolynomialDecay(cfg.warmup_updates, 2**62, 1.0, 1.0)
    else:
        raise ValueError(f"schedule.name: unknown schedule {cfg.name!r} (polynomial, tri_stage)")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
