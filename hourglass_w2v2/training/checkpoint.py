"""Checkpoint files: atomic writes, rotation, resume from the newest one that loads, averaging.

A checkpoint is one ``torch.save`` dict at ``exp/NAME/checkpoints/ckpt-<update>.pt`` with the
keys listed in :data:`CHECKPOINT_KEYS`. It is written to a temporary file in the same directory,
fsynced and renamed over the final name, so a crash or a full disk mid-write never leaves a
half-written file under a real checkpoint name, and the previous checkpoint is never touched.
The same :func:`atomic_write` writes the experiment directory's small files (``config.yaml``,
``train_info.json``); a process killed mid-write leaves only a hidden ``.*.tmp`` file, which
:func:`remove_stale_temp_files` clears at the next start.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

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
# the temporary names atomic_write gives: ".<final name>.<mkstemp's 8 random chars>.tmp"
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
CORRUPT_SUFFIX = ".corrupt"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a checkpoint)."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temp file next to ``path``, fsync it, then rename over ``path``.

    Readers see the old file or the new one, never a part; a failure removes the temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file owner-only; give it the mode a plain open() would
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
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


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode()))


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files :func:`atomic_write` left in ``directory`` when its process was
    killed mid-write (SIGKILL, power loss); return them. Call it only while no write runs."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = sorted(p for p in directory.iterdir() if _TEMP_RE.match(p.name) and p.is_file())
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def set_aside(path: str | Path) -> Path:
    """Rename an unreadable checkpoint to ``<name>.corrupt`` (``.corrupt.1``, ... when taken),
    out of the way of resume and rotation but kept for inspection; return the new path."""
    path = Path(path)
    target = path.with_name(path.name + CORRUPT_SUFFIX)
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}.{n}")
    os.replace(path, target)
    return target


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


def load_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` any pickled object; a missing, truncated or corrupt file raises
    :class:`CheckpointError` naming it (torch's own errors never name the file)."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises several types for truncated/garbage files
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded: the file is truncated, corrupt or not a "
            f"PyTorch file ({type(e).__name__}: {e})"
        ) from e


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict; a file that is not one raises :class:`CheckpointError` (a
    ``RuntimeError``) naming it."""
    ckpt = load_torch_file(path, map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"checkpoint {path} is not a hourglass-w2v2 checkpoint (no 'model')")
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


def rotate_checkpoints(
    ckpt_dir: str | Path, keep_last: int, keep_every: int, keep: str | Path | None = None
) -> list[Path]:
    """Delete all but the last ``keep_last`` checkpoints, milestones and ``keep``; return the
    deleted. ``keep`` is the checkpoint just written: kept even when newer files sort after it."""
    ckpts = list_checkpoints(ckpt_dir)
    recent = {p for _, p in ckpts[-keep_last:]} if keep_last > 0 else {p for _, p in ckpts}
    if keep is not None:
        recent.add(Path(ckpt_dir) / Path(keep).name)
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
