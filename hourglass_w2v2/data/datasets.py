"""Map-style datasets over lhotse cuts: raw-audio batches for pretraining and CTC fine-tuning.

Both follow lhotse's convention: the sampler yields a ``CutSet`` per batch and
``dataset[cuts]`` turns it into tensors. Pretraining can also read Lhotse Shar shards
(:class:`ShardStreams`), where the sampler deals :class:`ShardTicket` s and the dataset reads
the cuts and their audio from the shards in the DataLoader worker.

Pretraining batches are cropped to their shortest utterance (wav2vec 2.0's rule, no padding);
CTC batches are padded and carry a padding mask and token ids.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets
from lhotse.lazy import LazyIteratorChain


class CorruptAudioError(RuntimeError):
    """Audio of a cut could not be read; the message names the cut id and its source."""


def cut_set_path(manifest_dir: str | Path, corpus: str, part: str) -> Path:
    """``<manifest_dir>/<corpus>_cuts_<part>.jsonl.gz``, the cut set of one data part."""
    return Path(manifest_dir) / f"{corpus}_cuts_{part}.jsonl.gz"


def load_cuts(paths: list[str | Path]) -> CutSet:
    """Lazily open and concatenate cut sets; a missing file is an error naming it."""
    sets = []
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"cut set {p} does not exist (run prepare.sh stage 3)")
        sets.append(CutSet.from_jsonl_lazy(p))
    return _concat(sets)


def _concat(sets: list[CutSet]) -> CutSet:
    """The cut sets one after another, lazily (the set itself when there is one)."""
    return sets[0] if len(sets) == 1 else CutSet(LazyIteratorChain(*[s.data for s in sets]))


def speed_perturbed(cuts: CutSet, factors: list[float]) -> CutSet:
    """``cuts`` followed by a copy at each speed factor (ids get lhotse's ``_sp<factor>``).

    The copies are resampled when their audio is loaded; a factor above 1 makes them shorter, so
    CTC's label-length filter sees their real frame count.
    """
    for f in factors:
        if not 0.5 <= f <= 2.0 or f == 1.0:
            raise ValueError(f"data.speed_perturb: factor {f} is not in [0.5, 2] without 1.0")
    return _concat([cuts, *(cuts.perturb_speed(f, affix_id=True) for f in factors)])


def make_sampler(
    cuts: CutSet,
    max_duration: float,
    shuffle: bool,
    seed: int,
    num_buckets: int = 10,
    buffer_size: int = 20000,
    duration_bins: list[float] | None = None,
    drop_last: bool = False,
) -> DynamicBucketingSampler:
    """lhotse's ``DynamicBucketingSampler`` yielding the *global* stream of batches.

    It is built for one process (``world_size=1``): the trainer deals consecutive batches to
    ranks and accumulation steps itself, so the batches of an update do not depend on how many
    GPUs share it. ``duration_bins`` skips the bin estimation pass on big cut sets.
    """
    return DynamicBucketingSampler(
        cuts,
        max_duration=max_duration,
        shuffle=shuffle,
        seed=seed,
        num_buckets=num_buckets,
        buffer_size=buffer_size,
        duration_bins=duration_bins,
        drop_last=drop_last,
        world_size=1,
        rank=0,
    )


def make_eval_sampler(cuts: CutSet, max_duration: float) -> SimpleCutSampler:
    """Sequential batches of at most ``max_duration`` seconds, in cut-set order (validation)."""
    return SimpleCutSampler(cuts, max_duration=max_duration, shuffle=False)


def _load_audio(cut, skip_corrupt: bool) -> np.ndarray | None:
    try:
        audio = cut.load_audio()
    except Exception as e:  # soundfile, audioread, ffmpeg and lhotse raise different types
        src = ", ".join(s.source for s in getattr(cut.recording, "sources", [])) or "?"
        msg = f"cut {cut.id}: cannot read audio from {src} ({type(e).__name__}: {e})"
        if skip_corrupt:
            logging.warning("skipping %s", msg)
            return None
        raise CorruptAudioError(msg) from e
    if audio.ndim == 2:
        audio = audio[0]
    if audio.size == 0 or not np.isfinite(audio).all():
        msg = f"cut {cut.id}: audio is empty or contains non-finite samples"
        if skip_corrupt:
            logging.warning("skipping %s", msg)
            return None
        raise CorruptAudioError(msg)
    return audio.astype(np.float32, copy=False)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per utterance (fairseq's ``normalize: true``)."""
    return torch.nn.functional.layer_norm(x, x.shape)


class PretrainDataset(torch.utils.data.Dataset):
    """Unlabelled audio for contrastive pretraining.

    Every utterance of a batch is cropped to the batch's shortest one (capped at
    ``max_sample_size`` samples) at a random offset, so the batch needs no padding, as fairseq's
    ``RawAudioDataset`` does. The offsets come from an RNG seeded by ``seed``, the epoch
    (``set_epoch``, before the DataLoader starts its workers) and the batch's cut ids: a long
    cut is cropped at a new place every epoch, and batches are the same in every DataLoader
    worker and after resuming. The sampler's ``max_duration`` counts a cut's full duration, not
    its cropped one (fairseq batches by the cropped size), so batches holding cuts longer than
    ``max_sample_size`` carry less audio than ``max_duration``. With ``crop_multiple`` > 0 the
    crop length is rounded down to a multiple of it (kept when shorter than one multiple), so
    that batches come in few distinct lengths.

    Returns ``{"waveforms": (B, S) float32, "padding_mask": None, "cut_ids": list[str],
    "num_samples": int (before cropping), "num_skipped": int}``.
    """

    def __init__(
        self,
        max_sample_size: int = 250_000,
        normalize: bool = False,
        skip_corrupt: bool = False,
        seed: int = 0,
        crop_multiple: int = 0,
    ) -> None:
        if crop_multiple < 0:
            raise ValueError(f"PretrainDataset: crop_multiple must be >= 0, got {crop_multiple}")
        self.max_sample_size = max_sample_size
        self.crop_multiple = crop_multiple
        self.normalize = normalize
        self.skip_corrupt = skip_corrupt
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's crop offsets (call it before iterating a new DataLoader)."""
        if epoch < 0:
            raise ValueError(f"PretrainDataset.set_epoch: epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __getitem__(self, cuts: CutSet) -> dict:
        ids, audios = [], []
        for cut in cuts:
            audio = _load_audio(cut, self.skip_corrupt)
            if audio is not None:
                ids.append(cut.id)
                audios.append(torch.from_numpy(audio))
        num_skipped = len(cuts) - len(ids)
        if not audios:
            raise CorruptAudioError(f"every cut of a batch is corrupt: {[c.id for c in cuts]}")
        if self.normalize:
            audios = [_normalize(a) for a in audios]
        size = min(min(a.numel() for a in audios), self.max_sample_size)
        if self.crop_multiple and size >= self.crop_multiple:
            size -= size % self.crop_multiple
        rng = random.Random(f"{self.seed}:{self.epoch}:{'|'.join(ids)}")
        crops = []
        for a in audios:
            start = rng.randint(0, a.numel() - size)
            crops.append(a[start : start + size])
        return {
            "waveforms": torch.stack(crops),
            "padding_mask": None,
            "cut_ids": ids,
            "num_samples": sum(a.numel() for a in audios),
            "num_skipped": num_skipped,
        }


class CtcDataset(torch.utils.data.Dataset):
    """Labelled audio for CTC fine-tuning and validation: padded batches with token ids.

    Returns ``{"waveforms": (B, S), "padding_mask": (B, S) bool True=pad, "targets": (N,) int
    (all label sequences concatenated), "target_lengths": (B,), "texts": list[str], "cut_ids":
    list[str], "num_samples": int, "num_skipped": int}``.
    """

    def __init__(
        self,
        encode: Callable[[str], list[int]],
        normalize: bool = False,
        skip_corrupt: bool = False,
    ) -> None:
        self.encode = encode
        self.normalize = normalize
        self.skip_corrupt = skip_corrupt

    def __getitem__(self, cuts: CutSet) -> dict:
        ids, audios, texts = [], [], []
        for cut in cuts:
            audio = _load_audio(cut, self.skip_corrupt)
            if audio is None:
                continue
            ids.append(cut.id)
            audios.append(torch.from_numpy(audio))
            texts.append(cut_text(cut))
        if not audios:
            raise CorruptAudioError(f"every cut of a batch is corrupt: {[c.id for c in cuts]}")
        if self.normalize:
            audios = [_normalize(a) for a in audios]
        lengths = torch.tensor([a.numel() for a in audios])
        waveforms = torch.zeros(len(audios), int(lengths.max()))
        for i, a in enumerate(audios):
            waveforms[i, : a.numel()] = a
        padding_mask = torch.arange(waveforms.shape[1])[None, :] >= lengths[:, None]
        labels = [self.encode(t) for t in texts]
        return {
            "waveforms": waveforms,
            "padding_mask": padding_mask,
            "targets": torch.tensor([i for lab in labels for i in lab], dtype=torch.long),
            "target_lengths": torch.tensor([len(lab) for lab in labels], dtype=torch.long),
            "texts": texts,
            "cut_ids": ids,
            "num_samples": int(lengths.sum()),
            "num_skipped": len(cuts) - len(ids),
        }


def cut_text(cut) -> str:
    """The transcript of a cut (its supervisions joined); an unlabelled cut is an error."""
    if not cut.supervisions or any(s.text is None for s in cut.supervisions):
        raise ValueError(f"cut {cut.id} has no transcript (needed for CTC fine-tuning)")
    return " ".join(s.text.strip() for s in cut.supervisions)


def ctc_min_frames(ids: list[int]) -> int:
    """Frames CTC needs for a label: one per token plus a blank between equal neighbours."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:], strict=False) if a == b)


def filter_durations(
    cuts: CutSet, min_duration: float = 0.0, max_cut_duration: float | None = None
) -> CutSet:
    """Lazily drop cuts outside ``[min_duration, max_cut_duration]`` seconds (the ``data``
    section's duration filter); ``min_duration`` 0 and ``max_cut_duration`` None keep all."""
    if min_duration > 0:
        cuts = cuts.filter(lambda c: c.duration >= min_duration)
    if max_cut_duration is not None:
        cuts = cuts.filter(lambda c: c.duration <= max_cut_duration)
    return cuts


def filter_ctc_cuts(
    cuts: CutSet,
    encode: Callable[[str], list[int]],
    num_frames: Callable[[int], int],
) -> tuple[CutSet, int]:
    """Drop cuts whose label cannot be aligned to their frames (CTC would return inf).

    ``num_frames(num_samples)`` is the model's output length. Returns the kept cuts (lazy, when
    ``cuts`` is) and how many are dropped; one counting pass logs each dropped cut id.
    """

    def fits(cut) -> bool:
        return ctc_min_frames(encode(cut_text(cut))) <= num_frames(cut.num_samples)

    dropped = 0
    for cut in cuts:
        if not fits(cut):
            dropped += 1
            logging.info(
                "dropping cut %s: its label needs more frames than its audio gives", cut.id
            )
    return cuts.filter(fits), dropped


# ---------------------------------------------------------------- Lhotse Shar shards


NUM_CUTS_FOR_BINS = 10_000  # DynamicBucketingSampler's num_cuts_for_bins_estimate


@dataclass(frozen=True)
class ShardTicket:
    """A batch to make: batch ``batch`` of the stream over shards ``shards`` in ``epoch``.

    The training sampler deals tickets (a few integers each) instead of cut sets; the dataset,
    in whichever DataLoader worker receives the ticket, reads the stream's shards and returns
    that batch.
    """

    epoch: int
    shards: tuple[int, ...]
    batch: int


class ShardStreams:
    """Batches of pretraining cuts read from Lhotse Shar shards, one stream per shard subset.

    ``shards`` are ``{"cuts": ..., "recording": ...}`` paths (``shar_shards``); ``sampler_args``
    are :func:`make_sampler`'s keyword arguments, ``min_duration`` / ``max_cut_duration`` the
    data section's duration filter. A stream over some shards (in the given order) is a
    ``DynamicBucketingSampler`` over their cuts set to an epoch: the same batches whether it
    reads the metadata only (``cuts.<n>.jsonl.gz``, to count batches) or the audio as well.
    Without ``duration_bins``, the bins are estimated here once from the metadata of the first
    cuts in listed order (as the FLAC path's sampler does from its first cuts), so that no
    stream reads its audio twice to estimate its own.
    """

    def __init__(
        self,
        shards: list[dict[str, str]],
        sampler_args: dict,
        min_duration: float = 0.0,
        max_cut_duration: float | None = None,
    ) -> None:
        self.shards = shards
        self.min_duration = min_duration
        self.max_cut_duration = max_cut_duration
        self.sampler_args = dict(sampler_args)
        if self.sampler_args.get("duration_bins") is None:
            first = islice(
                self.cuts(tuple(range(len(shards))), with_audio=False), NUM_CUTS_FOR_BINS
            )
            self.sampler_args["duration_bins"] = estimate_duration_buckets(
                first, self.sampler_args.get("num_buckets", 10)
            )

    def shard_order(self, epoch: int, seed: int, shuffle: bool) -> list[int]:
        """The shard order of ``epoch``: drawn from ``(seed, epoch)``, or as listed."""
        order = list(range(len(self.shards)))
        if shuffle:
            random.Random(f"shards:{seed}:{epoch}").shuffle(order)
        return order

    def cuts(self, shards: tuple[int, ...], with_audio: bool) -> CutSet:
        """The cuts of ``shards`` in that order (lazy), duration-filtered."""
        fields = {"cuts": [self.shards[i]["cuts"] for i in shards]}
        if with_audio:
            fields["recording"] = [self.shards[i]["recording"] for i in shards]
        cuts = CutSet.from_shar(fields=fields)
        return filter_durations(cuts, self.min_duration, self.max_cut_duration)

    def batches(self, epoch: int, shards: tuple[int, ...], with_audio: bool) -> Iterator[CutSet]:
        """The stream's batches in ``epoch`` (the sampler's epoch sets its shuffling)."""
        sampler = make_sampler(self.cuts(shards, with_audio), **self.sampler_args)
        sampler.set_epoch(epoch)
        # lhotse seeds the sampler's bucket choice (sync_buckets) with 1234 + the DataLoader
        # worker id; a stream must batch alike in the main process (counting) and in any worker
        with mock.patch.object(torch.utils.data, "get_worker_info", lambda: None):
            return iter(sampler)

    def count_batches(self, epoch: int, shards: tuple[int, ...]) -> int:
        """How many batches the stream yields in ``epoch``, from the metadata alone."""
        return sum(1 for _ in self.batches(epoch, shards, with_audio=False))


class ShardedPretrainDataset(PretrainDataset):
    """:class:`PretrainDataset` whose items are :class:`ShardTicket` s instead of cut sets.

    Each process (DataLoader worker) keeps an open iterator per stream it serves and moves it
    forward to the ticket's batch; the batches it passes over (a resumed epoch's start) are read
    from the tar files but not decoded. Tickets of a stream must come in increasing order within
    a process, which the sampler's dealing guarantees; an earlier one reopens the stream.
    """

    def __init__(self, streams: ShardStreams, **kwargs) -> None:
        super().__init__(**kwargs)
        self.streams = streams
        self._open: dict[tuple[int, tuple[int, ...]], tuple[Iterator[CutSet], int]] = {}

    def __getitem__(self, ticket: ShardTicket) -> dict:  # type: ignore[override]
        key = (ticket.epoch, ticket.shards)
        it, position = self._open.get(key, (None, 0))
        if it is None or position > ticket.batch:
            # streams of other epochs are finished: drop them with their buffered audio
            self._open = {k: v for k, v in self._open.items() if k[0] == ticket.epoch}
            it, position = self.streams.batches(ticket.epoch, ticket.shards, True), 0
        try:
            for _ in range(ticket.batch - position):
                next(it)
            cuts = next(it)
        except StopIteration:
            raise IndexError(
                f"Shar stream over shards {list(ticket.shards)} has no batch {ticket.batch} in "
                f"epoch {ticket.epoch}: the shards changed since the epoch's plan was made"
            ) from None
        self._open[key] = (it, ticket.batch + 1)
        return super().__getitem__(cuts)
