"""The training loop shared by pretraining and fine-tuning, its tasks and its config."""

from hourglass_w2v2.training.config import ExperimentConfig, load_config
from hourglass_w2v2.training.task import Task
from hourglass_w2v2.training.trainer import Trainer

__all__ = [
    "ExperimentConfig",
    "Task",
    "Trainer",
    "load_config",
]
