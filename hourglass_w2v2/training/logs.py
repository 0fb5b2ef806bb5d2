"""Text logs of a training run: one file per run and rank under ``exp/NAME/log``, plus stderr."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path


def setup_logging(log_dir: Path, rank: int, name: str) -> Path:
    """Text log ``log/log-<name>-<datetime>[-rank]`` plus stderr (rank 0 only)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    path = log_dir / (f"log-{name}-{stamp}" + (f"-rank{rank}" if rank else ""))
    fmt = logging.Formatter(
        f"%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] (rank {rank}) %(message)s"
    )
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in list(root.handlers):
        if getattr(h, "_hourglass", False):
            root.removeHandler(h)
    handlers: list[logging.Handler] = [logging.FileHandler(path)]
    if rank == 0:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(fmt)
        h._hourglass = True
        root.addHandler(h)
    return path
