"""The training loop shared by pretraining and fine-tuning, its tasks, config and checkpoints."""

from hourglass_w2v2.training.checkpoint import (
    CHECKPOINT_KEYS,
    atomic_save,
    average_checkpoints,
    list_checkpoints,
    load_checkpoint,
    load_latest,
)
from hourglass_w2v2.training.config import ExperimentConfig, load_config
from hourglass_w2v2.training.trainer import Task, Trainer

__all__ = [
    "CHECKPOINT_KEYS",
    "ExperimentConfig",
    "Task",
    "Trainer",
    "atomic_save",
    "average_checkpoints",
    "list_checkpoints",
    "load_checkpoint",
    "load_config",
    "load_latest",
]
