"""Decoding batches by padded duration (``bin.decode``; imports nothing heavy, so GPU benchmarks
use it with torch alone)."""

from __future__ import annotations

from typing import Protocol, TypeVar


class HasDuration(Protocol):
    duration: float


T = TypeVar("T", bound=HasDuration)


def make_batches(cuts: list[T], max_duration: float) -> list[list[T]]:
    """Group cuts sorted by duration into batches of at most ``max_duration`` padded seconds."""
    cuts = sorted(cuts, key=lambda c: c.duration, reverse=True)
    batches: list[list[T]] = []
    for cut in cuts:
        # sorted longest first, so the first cut of a batch sets its padded length
        if batches and batches[-1][0].duration * (len(batches[-1]) + 1) <= max_duration:
            batches[-1].append(cut)
        else:
            batches.append([cut])
    return batches
