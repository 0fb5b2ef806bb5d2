"""Command-line plumbing shared by ``bin/pretrain.py`` and ``bin/finetune.py``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from hourglass_w2v2.checkpoint import CheckpointError
from hourglass_w2v2.training.config import ConfigError, ExperimentConfig, load_config
from hourglass_w2v2.training.distributed import cleanup_distributed
from hourglass_w2v2.training.pretrain_task import data_paths, data_shards
from hourglass_w2v2.training.task import Task
from hourglass_w2v2.training.trainer import HealthError, NonFiniteError, ResumeError, Trainer


def base_parser(description: str) -> argparse.ArgumentParser:
    """``--config``, ``--exp-dir`` and trailing ``section.key=value`` overrides."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Overrides: dotted keys of the config, e.g. optim.lr=1e-4 trainer.max_updates=100 "
        "model.mask_prob=0.5 (values are parsed as YAML).",
    )
    parser.add_argument("--config", required=True, help="experiment YAML (conf/*.yaml)")
    parser.add_argument("--exp-dir", required=True, help="experiment dir (resumed if it exists)")
    parser.add_argument(
        "--restart-from-scratch",
        action="store_true",
        help="when --exp-dir holds checkpoints but none of them loads, set them aside as "
        "*.corrupt and train from update 0 (without it, training refuses to start)",
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="go on from the newest checkpoint in --exp-dir even when it was trained with "
        "another config (another seed, model, data, optimizer or schedule); without it, "
        "training refuses, naming the keys that differ",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the config and exit without training: its keys and values, the model it "
        "builds, --init and the lang dir, the training and validation cut sets; exit status 0, "
        "or 2 with one line naming what is wrong (run.sh runs this before starting torchrun)",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return parser


def check_data(cfg: ExperimentConfig) -> None:
    """Raise ``FileNotFoundError`` naming the config key when the training or validation
    data that ``cfg`` names is not on disk."""
    d = cfg.data
    if d.shar_dir is None:
        data_paths(d, train=True)
    else:
        data_shards(d)  # the listing shar_train_data reads
    data_paths(d, train=False)


def run(
    args: argparse.Namespace,
    task_name: str,
    make_task: Callable[[ExperimentConfig], Task],
    extra_overrides: list[str] = (),
) -> int:
    """Load the config, build the task and train; return the exit status.

    2: bad input (a config value, a missing file, an unreadable ``--init`` or checkpoint), with
    a message naming it and no traceback; 1: training failed (non-finite, health); 0: done.
    """
    try:
        cfg = load_config(args.config, list(args.overrides) + list(extra_overrides))
        if cfg.task != task_name:
            raise ValueError(f"{args.config} is a '{cfg.task}' config, expected '{task_name}'")
        task = make_task(cfg)
        if args.check_config:
            check_data(cfg)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"{args.config}: config, model and data are in order", file=sys.stderr)
        return 0
    try:
        Trainer(cfg, task, args.exp_dir, args.restart_from_scratch, args.allow_config_change).fit()
    except (ConfigError, FileNotFoundError, CheckpointError, ResumeError) as e:
        logging.error("%s", e)  # logging is set up by now: the message lands in the log too
        return 2
    except (NonFiniteError, HealthError) as e:
        logging.error("%s", e)
        return 1
    finally:
        cleanup_distributed()
    return 0
