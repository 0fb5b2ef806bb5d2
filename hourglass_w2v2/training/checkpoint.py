"""Checkpoint files: atomic writes, rotation, resume from the newest one that loads, averaging.

A checkpoint is one ``torch.save`` dict at ``exp/NAME/checkpoints/ckpt-<update>.pt`` with the
keys listed in :data:`CHECKPOINT_KEYS`. It is written to a temporary file in the same directory,
fsynced and renamed over the final name, so a crash or a full disk mid-write never leaves a
half-written file under a real checkpoint name, and the previous checkpoint is never touched.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_KEYS = (
    "model",
    "model_config",
    "task",
    "vocab_size",
    "lang_dir",
    "tokens",
    "optimizer",
    "scheduler",
    "grad_scaler",
    "sampler",
    "rng",
    "update",
    "epoch",
    "config",
    "metrics",
)
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file next to ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    """``(update, path)`` of every ``ckpt-<update>.pt`` in ``ckpt_dir``, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict; a file that is not one raises ``RuntimeError`` naming it."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for truncated/garbage files
        raise RuntimeError(f"checkpoint {path} cannot be loaded ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise RuntimeError(f"checkpoint {path} is not a hourglass-w2v2 checkpoint (no 'model')")
    return ckpt


def load_latest(ckpt_dir: str | Path) -> tuple[dict, Path] | None:
    """The newest checkpoint in ``ckpt_dir`` that loads, or None when there is none.

    A newest checkpoint that does not load (truncated by a crash outside our atomic write, a
    disk error) is reported and skipped, and the one before it is tried.
    """
    for _, path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return load_checkpoint(path), path
        except RuntimeError as e:
            logging.error("skipping corrupt checkpoint: %s", e)
    return None


def rotate_checkpoints(ckpt_dir: str | Path, keep_last: int, keep_every: int) -> list[Path]:
    """Delete all but the last ``keep_last`` checkpoints and milestones; return the deleted."""
    ckpts = list_checkpoints(ckpt_dir)
    recent = {p for _, p in ckpts[-keep_last:]} if keep_last > 0 else {p for _, p in ckpts}
    removed = []
    for update, path in ckpts:
        if path in recent or (keep_every > 0 and update % keep_every == 0):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def average_checkpoints(paths: list[str | Path]) -> dict:
    """Element-wise mean of the ``model`` state dicts of ``paths``; other keys from the last.

    Floating-point tensors are averaged in float64 and cast back; integer buffers (e.g.
    counters) are taken from the last checkpoint, since their mean has no meaning.
    """
    if not paths:
        raise ValueError("average_checkpoints: no checkpoints given")
    last = load_checkpoint(paths[-1])
    sums = {k: v.double().clone() for k, v in last["model"].items() if v.is_floating_point()}
    for p in paths[:-1]:
        state = load_checkpoint(p)["model"]
        missing = set(sums) - set(state)
        if missing:
            raise ValueError(f"checkpoint {p} lacks parameters {sorted(missing)[:5]}")
        for k in sums:
            sums[k] += state[k].double()
    avg = dict(last)
    avg["model"] = {
        k: (sums[k] / len(paths)).to(v.dtype) if k in sums else v for k, v in last["model"].items()
    }
    avg["averaged_from"] = [str(p) for p in paths]
    return avg
