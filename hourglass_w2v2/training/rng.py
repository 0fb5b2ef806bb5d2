"""Random number generators of python, numpy and torch: seeding per micro-batch, and the state a
checkpoint keeps so that a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def shard_seed(seed: int, epoch: int, step: int, shard: int) -> int:
    """The seed of one micro-batch: a function of ``(seed, epoch, step, shard)`` alone, so a
    shard draws the same masks and dropout on its own GPU or as an accumulation step."""
    return (seed * 1_000_003 + epoch * 10_007 + step) * 1_009 + shard


def rng_state() -> dict[str, Any]:
    """RNG states of python, numpy, torch CPU and all CUDA devices of this process."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
