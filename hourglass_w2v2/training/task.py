"""What a training task supplies to the one training loop (pretraining, CTC fine-tuning)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hourglass_w2v2.training.health import HealthMonitor

if TYPE_CHECKING:
    from hourglass_w2v2.training.trainer import Trainer


class Task:
    """What a training task supplies to the :class:`Trainer` (pretraining, CTC, ...)."""

    name: str = "task"
    #: validation metric to minimise for ``best.pt`` (None: no best checkpoint)
    best_metric: str | None = None
    health: HealthMonitor | None = None

    def selection_score(self, metrics: dict[str, float]) -> float | None:
        """The value of ``best_metric`` in ``metrics`` (lower is better), or None when this
        validation must not become ``best.pt``."""
        return metrics.get(self.best_metric) if self.best_metric else None

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def train_data(self) -> tuple[torch.utils.data.Dataset, Any]:
        """``(dataset, lhotse sampler)`` of the training set; the sampler has world_size 1."""
        raise NotImplementedError

    def set_num_updates(self, model: nn.Module, update: int) -> None:
        """Called before every update (temperature annealing, encoder freezing)."""

    def compute_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """Mean loss over the micro-batch and metrics (tensors or floats, means over the
        micro-batch), which must include ``sample_size`` (the loss's normaliser)."""
        raise NotImplementedError

    def validate(self, model: nn.Module) -> dict[str, float]:
        return {}

    def checkpoint_fields(self) -> dict[str, Any]:
        """Task-specific checkpoint keys (``task``, ``vocab_size``, ``lang_dir``, ``tokens``)."""
        return {"task": self.name, "vocab_size": None, "lang_dir": None, "tokens": None}

    def init_description(self) -> str:
        return "scratch"

    def on_train_end(self, trainer: Trainer) -> None:
        """Hook after the last checkpoint (e.g. checkpoint averaging)."""
