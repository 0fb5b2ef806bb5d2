"""Command-line plumbing shared by ``bin/pretrain.py`` and ``bin/finetune.py``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from hourglass_w2v2.training.config import ExperimentConfig, load_config
from hourglass_w2v2.training.distributed import cleanup_distributed
from hourglass_w2v2.training.trainer import HealthError, NonFiniteError, Task, Trainer


def base_parser(description: str) -> argparse.ArgumentParser:
    """``--config``, ``--exp-dir`` and trailing ``section.key=value`` overrides."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Overrides: dotted keys of the config, e.g. optim.lr=1e-4 trainer.max_updates=100 "
        "model.mask_prob=0.5 (values are parsed as YAML).",
    )
    parser.add_argument("--config", required=True, help="experiment YAML (conf/*.yaml)")
    parser.add_argument("--exp-dir", required=True, help="experiment dir (resumed if it exists)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return parser


def run(
    args: argparse.Namespace,
    task_name: str,
    make_task: Callable[[ExperimentConfig], Task],
    extra_overrides: list[str] = (),
) -> int:
    """Load the config, build the task and train; config errors exit 2 with the message."""
    try:
        cfg = load_config(args.config, list(args.overrides) + list(extra_overrides))
        if cfg.task != task_name:
            raise ValueError(f"{args.config} is a '{cfg.task}' config, expected '{task_name}'")
        task = make_task(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        Trainer(cfg, task, args.exp_dir).fit()
    except (NonFiniteError, HealthError) as e:
        logging.error("%s", e)
        return 1
    finally:
        cleanup_distributed()
    return 0
