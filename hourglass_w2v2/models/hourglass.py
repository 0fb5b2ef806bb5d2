"""Hourglass resampling (arXiv 2110.13711): shorten a sequence by ``factor``, upsample it back.

Lengths that are not a multiple of ``factor`` are padded with padding frames (zeros, masked)
and cropped back after upsampling. Padded frames never reach a valid short frame: they are
zeroed before the shortening and, for ``avg``, left out of the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pad_to_multiple(x: Tensor, padding_mask: Tensor | None, factor: int) -> tuple[Tensor, Tensor]:
    """Pad (B, T, C) on the right to a multiple of ``factor``; return it and its (B, T') mask."""
    batch, length, _ = x.shape
    if padding_mask is None:
        padding_mask = torch.zeros(batch, length, dtype=torch.bool, device=x.device)
    extra = (-length) % factor
    if extra:
        x = F.pad(x, (0, 0, 0, extra))
        padding_mask = F.pad(padding_mask, (0, extra), value=True)
    return x, padding_mask


class Shorten(nn.Module):
    """(B, T, C) -> (B, ceil(T/k), C) by mean pooling (``avg``) or concat + Linear (``linear``).

    With ``pool_padding`` (NVIDIA DeepLearningExamples' shortening) padding frames enter the
    pooling as they are and ``avg`` divides by k, counting the zeros that pad T to a multiple
    of k; by default padding frames are zeroed and left out of the mean.
    """

    def __init__(self, dim: int, factor: int, mode: str = "avg", pool_padding: bool = False):
        super().__init__()
        if mode not in ("avg", "linear"):
            raise ValueError(f"unknown shortening {mode!r}")
        self.factor, self.mode, self.pool_padding = factor, mode, pool_padding
        self.proj = nn.Linear(dim * factor, dim) if mode == "linear" else None

    def forward(self, x: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Return the short sequence and its padding mask (None if the input had none)."""
        batch, _, dim = x.shape
        had_mask = padding_mask is not None
        x, mask = pad_to_multiple(x, padding_mask, self.factor)
        valid = (~mask).unsqueeze(-1).to(x.dtype)
        if self.pool_padding:
            valid = torch.ones_like(valid)  # pad_to_multiple's frames are zeros already
        x = x * valid
        if self.mode == "avg":
            counts = valid.view(batch, -1, self.factor, 1).sum(2).clamp(min=1.0)
            short = x.view(batch, -1, self.factor, dim).sum(2) / counts
        else:
            short = self.proj(x.reshape(batch, -1, self.factor * dim))
        short_mask = mask.view(batch, -1, self.factor).all(-1)
        return short, (short_mask if had_mask else None)


class Upsample(nn.Module):
    """(B, T', C) -> (B, T, C): repeat frames k times (``repeat``) or Linear(C, kC) (``linear``)."""

    def __init__(self, dim: int, factor: int, mode: str = "repeat"):
        super().__init__()
        if mode not in ("repeat", "linear"):
            raise ValueError(f"unknown upsampling {mode!r}")
        self.factor, self.mode = factor, mode
        self.proj = nn.Linear(dim, dim * factor) if mode == "linear" else None

    def forward(self, x: Tensor, length: int) -> Tensor:
        """Upsample and crop to ``length`` frames."""
        batch, short_len, dim = x.shape
        if self.mode == "repeat":
            x = x.unsqueeze(2).expand(batch, short_len, self.factor, dim).reshape(batch, -1, dim)
        else:
            x = self.proj(x).view(batch, short_len * self.factor, dim)
        return x[:, :length]
