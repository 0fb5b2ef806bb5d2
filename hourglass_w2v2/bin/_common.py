"""What the recipe-stage entry points share: their log format and how an input error ends them.

A stage tool logs as ``<time> <LEVEL> [<file>:<line>] <message>`` (icefall's format) and ends
an expected input error (a missing folder, a bad corpus file) with the error's message logged
and exit status 1, so ``prepare.sh`` stops at that stage with the message as its last line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr in :data:`LOG_FORMAT` from ``level`` up."""
    logging.basicConfig(format=LOG_FORMAT, level=level)


@contextmanager
def exit_on(*errors: type[Exception]) -> Iterator[None]:
    """Run the block; one of ``errors`` is logged (its message names the file) and exits with
    status 1 instead of a traceback. Any other exception is a bug and propagates as is."""
    try:
        yield
    except errors as e:
        logging.error(str(e))
        sys.exit(1)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """``--exp-dir``, ``--lang-dir`` and ``--checkpoint``: the fine-tuned model a tool that
    uses it outside the recipe (transcribe, export) loads, with the lang dir it recorded."""
    p.add_argument("--exp-dir", required=True, type=Path, help="experiment directory")
    p.add_argument(
        "--lang-dir",
        type=Path,
        default=None,
        help="default: the lang dir the checkpoint was fine-tuned with",
    )
    p.add_argument("--checkpoint", type=Path, default=None, help="default: as bin.decode")
