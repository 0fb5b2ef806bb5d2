"""Checkpoint files: list, load, resume from the newest one that loads, rotate, average.

A checkpoint is one ``torch.save`` dict at ``exp/NAME/checkpoints/ckpt-<update>.pt`` with the
keys listed in :data:`CHECKPOINT_KEYS`, written with :func:`hourglass_w2v2.fileio.atomic_save`
(a temporary file renamed over the final name), so a crash or a full disk mid-write never leaves
a half-written file under a real checkpoint name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from hourglass_w2v2.lang.tokenizer import Tokenizer
from hourglass_w2v2.models import ModelConfig, build_model

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
CORRUPT_SUFFIX = ".corrupt"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a checkpoint)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit what it is used with (another task, other units)."""


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


def resolve_checkpoint(exp_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """The checkpoint to decode: ``checkpoint`` if given, else ``averaged.pt``, ``best.pt``,
    the newest ``ckpt-*.pt`` of ``<exp_dir>/checkpoints``; a clear error when there is none."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        return path
    ckpt_dir = Path(exp_dir) / "checkpoints"
    for name in ("averaged.pt", "best.pt"):
        if (ckpt_dir / name).is_file():
            return ckpt_dir / name
    found = list_checkpoints(ckpt_dir)
    if not found:
        raise FileNotFoundError(
            f"no checkpoint in {ckpt_dir} (looked for averaged.pt, best.pt, ckpt-*.pt); "
            "fine-tune first (run.sh stage 2) or pass --checkpoint"
        )
    return found[-1][1]


def load_ctc_model(
    ckpt_path: str | Path,
    tokenizer: Tokenizer,
    device: torch.device,
    ckpt: dict | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Build the CTC model of a fine-tuning checkpoint and check it against the lang dir.

    The lang dir's unit count must equal the CTC head's output size, else the error names both
    (and the lang dir the model was trained with), and its units must be the checkpoint's id for
    id (:func:`check_units`), since decoding with the wrong units would silently produce garbage.
    ``ckpt`` is the dict of ``ckpt_path`` when the caller has loaded it already.
    """
    if ckpt is None:
        ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("task") != "ctc":
        raise CheckpointMismatchError(
            f"checkpoint {ckpt_path} is a {ckpt.get('task')!r} checkpoint, not a CTC one; "
            "decode a fine-tuned model"
        )
    head = ckpt["model"].get("ctc_head.weight")
    vocab_size = int(ckpt["vocab_size"]) if ckpt.get("vocab_size") else int(head.shape[0])
    if vocab_size != tokenizer.vocab_size:
        raise CheckpointMismatchError(
            f"lang dir {tokenizer.lang_dir} has {tokenizer.vocab_size} units but the CTC head of "
            f"{ckpt_path} has {vocab_size} outputs (it was trained with lang dir "
            f"{ckpt.get('lang_dir')}); pass the matching --lang-dir"
        )
    check_units(ckpt, ckpt_path, tokenizer)
    model = build_model(
        ModelConfig.from_dict(ckpt["model_config"]), task="ctc", vocab_size=vocab_size
    )
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, ckpt


def load_experiment_ctc_model(
    exp_dir: str | Path,
    checkpoint: str | Path | None,
    lang_dir: str | Path | None,
    device: torch.device,
) -> tuple[torch.nn.Module, dict, Path, Tokenizer]:
    """The CTC model of an experiment directory, its checkpoint dict, path and units.

    The checkpoint is :func:`resolve_checkpoint`'s choice; ``lang_dir`` defaults to the one the
    checkpoint records (an error asks for ``--lang-dir`` when it records none). The file is
    read once, then checked and built by :func:`load_ctc_model`.
    """
    ckpt_path = resolve_checkpoint(exp_dir, checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    if lang_dir is None:
        recorded = ckpt.get("lang_dir")
        if not recorded:
            raise FileNotFoundError(f"{ckpt_path} records no lang dir: pass --lang-dir")
        lang_dir = recorded
    tokenizer = Tokenizer(Path(lang_dir))
    model, ckpt = load_ctc_model(ckpt_path, tokenizer, device, ckpt)
    return model, ckpt, ckpt_path, tokenizer


def input_normalized(ckpt: dict) -> bool:
    """Whether the model of ``ckpt`` was trained on per-utterance normalised audio
    (``data.normalize`` of the training config it records; False when it records none)."""
    return bool(((ckpt.get("config") or {}).get("data") or {}).get("normalize", False))


def check_units(ckpt: dict, ckpt_path: str | Path, tokenizer: Tokenizer) -> None:
    """Refuse a lang dir whose units differ, id for id, from those the checkpoint recorded.

    Fine-tuning checkpoints record ``tokens`` (the unit of every CTC output). A checkpoint
    without them (written before they were recorded) is decoded with a warning, since only the
    unit count can be checked then.
    """
    tokens = ckpt.get("tokens")
    if tokens is None:
        logging.warning(
            "checkpoint %s records no units (it predates that record): only the unit count of "
            "lang dir %s was checked, not their order; make sure it is the lang dir the model "
            "was fine-tuned with (%s)",
            ckpt_path,
            tokenizer.lang_dir,
            ckpt.get("lang_dir"),
        )
        return
    ours = tokenizer.id2token
    differ = [i for i, (a, b) in enumerate(zip(ours, tokens, strict=False)) if a != b]
    if differ or len(ours) != len(tokens):
        i = differ[0] if differ else min(len(ours), len(tokens))
        here = repr(ours[i]) if i < len(ours) else "missing"
        there = repr(tokens[i]) if i < len(tokens) else "missing"
        raise CheckpointMismatchError(
            f"{tokenizer.lang_dir / 'tokens.txt'}: id {i} is {here} here but {there} in the units "
            f"{ckpt_path} was fine-tuned with (lang dir {ckpt.get('lang_dir')}; {len(differ)} of "
            f"{len(tokens)} ids differ): decoding would map outputs to the wrong units; pass "
            "that lang dir as --lang-dir"
        )
