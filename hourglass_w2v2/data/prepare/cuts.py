"""Raw-audio lhotse cut sets (recipe stage 3).

One cut per recording with its supervision; no features, the model reads the waveform. Cuts of
recordings not at 16 kHz are resampled (lhotse resamples lazily on load) and counted. Length
rules follow wav2vec 2.0 as fairseq and NVIDIA DeepLearningExamples apply them: pretraining skips
only cuts shorter than ``min_sample_size`` (32000 samples, 2 s) and keeps longer ones whole; the
pretraining dataset crops them to ``max_sample_size`` (250000 samples, 15.625 s) when a batch is
loaded, at a fresh random offset each epoch (``datasets.PretrainDataset``), so stage 3 only counts
what that crop removes. Fine-tuning subsets drop only extreme lengths, dev/test keep everything
so every utterance is scored. The combined ``pretrain`` set holds the training parts (unlabeled
use; supervisions stay attached, harmlessly), shuffled with a seed.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet, load_manifest, validate
from lhotse.utils import fastcopy

from hourglass_w2v2.data.prepare.librispeech import manifest_paths, save_manifest
from hourglass_w2v2.models import SAMPLE_RATE

MIN_SAMPLE_SIZE = 32_000  # fairseq's min_sample_size: shorter pretraining cuts are skipped
MAX_SAMPLE_SIZE = 250_000  # fairseq's max_sample_size: longer ones are cropped when loaded


@dataclass
class CutStats:
    """What ``make_cuts`` did to one part, and what the pretraining crop will remove."""

    cuts: int
    hours: float
    resampled: int
    too_short: int
    too_long: int
    crop_seconds: float | None = None  # the crop length counted against, if any
    to_crop: int = 0  # cuts longer than crop_seconds
    crop_hours: float = 0.0  # their audio beyond crop_seconds

    def add(self, other: CutStats) -> None:
        """Add ``other``'s counts to these (the crop length is taken from ``other``)."""
        for name in ("cuts", "hours", "resampled", "too_short", "too_long", "to_crop",
                     "crop_hours"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.crop_seconds = other.crop_seconds

    def describe(self) -> str:
        """One log line: counts, resampling, drops and (pretraining) what cropping removes."""
        text = (f"{self.cuts} cuts, {self.hours:.3f} h, {self.resampled} resampled to "
                f"{SAMPLE_RATE} Hz, dropped {self.too_short} too short / {self.too_long} too long")
        if self.crop_seconds is not None:
            text += (f"; {self.to_crop} cuts longer than {self.crop_seconds:g} s will be cropped,"
                     f" removing {self.crop_hours:.3f} h of {self.hours:.3f} h")
        return text


def cuts_path(manifest_dir: str | Path, prefix: str, part: str) -> Path:
    return Path(manifest_dir) / f"{prefix}_cuts_{part}.jsonl.gz"


def make_cuts(manifest_dir: str | Path, prefix: str, part: str,
              min_duration: float | None = None, max_duration: float | None = None,
              crop_duration: float | None = None) -> tuple[CutSet, CutStats]:
    """Cuts of one part from its stage-1/2 manifests, resampled to 16 kHz and validated.

    Cuts outside ``[min_duration, max_duration]`` seconds are dropped and counted (None disables
    a bound). ``crop_duration`` drops nothing: it counts the cuts longer than it and the audio a
    crop to that length removes from them (``lhotse.validate`` checks the rest).
    """
    rec_path, sup_path = manifest_paths(manifest_dir, prefix, part)
    if not sup_path.is_file() or not rec_path.is_file():
        raise FileNotFoundError(f"{sup_path} or {rec_path} not found: run stages 1-2 first")
    cuts = CutSet.from_manifests(recordings=load_manifest(rec_path),
                                 supervisions=load_manifest(sup_path))
    # One supervision per recording: name each cut after its utterance, as the test sets are.
    cuts = CutSet.from_cuts(
        fastcopy(c, id=c.supervisions[0].id) if len(c.supervisions) == 1 else c for c in cuts)
    resampled = sum(c.sampling_rate != SAMPLE_RATE for c in cuts)
    if resampled:
        cuts = cuts.resample(SAMPLE_RATE).to_eager()
    too_short = sum(min_duration is not None and c.duration < min_duration for c in cuts)
    too_long = sum(max_duration is not None and c.duration > max_duration for c in cuts)
    cuts = cuts.filter(lambda c: (min_duration is None or c.duration >= min_duration)
                       and (max_duration is None or c.duration <= max_duration)).to_eager()
    for cut in cuts:
        if len(cut.supervisions) != 1 or not cut.supervisions[0].text:
            raise ValueError(
                f"{prefix} {part}: cut {cut.id} needs exactly one non-empty supervision")
    validate(cuts)
    stats = CutStats(len(cuts), sum(c.duration for c in cuts) / 3600, resampled, too_short,
                     too_long)
    if crop_duration is not None:
        excess = [c.duration - crop_duration for c in cuts if c.duration > crop_duration]
        stats.crop_seconds, stats.to_crop, stats.crop_hours = (
            crop_duration, len(excess), sum(excess) / 3600)
    return cuts, stats


def prepare_cut_sets(manifest_dir: str | Path, prefix: str, parts: list[str],
                     pretrain_parts: list[str],
                     min_sample_size: int = MIN_SAMPLE_SIZE,
                     max_sample_size: int = MAX_SAMPLE_SIZE,
                     finetune_parts: tuple[str, ...] = (),
                     finetune_duration: tuple[float, float] = (0.5, 30.0),
                     seed: int = 42) -> dict[str, CutStats]:
    """Stage 3: ``<prefix>_cuts_<part>.jsonl.gz`` for each part plus the combined ``pretrain``.

    ``finetune_parts`` get ``finetune_duration`` bounds (seconds), other parts none.
    ``pretrain`` combines ``pretrain_parts`` without the cuts shorter than ``min_sample_size``
    samples, shuffled with ``seed``; cuts longer than ``max_sample_size`` samples stay (they
    are cropped when loaded) and are counted with the audio the crop removes, a lower bound
    since a batch is also cropped to its shortest cut. Existing outputs are skipped; each file
    is written to a temporary name and renamed.
    """
    done: dict[str, CutStats] = {}
    for part in parts:
        out = cuts_path(manifest_dir, prefix, part)
        if out.is_file():
            logging.info(f"{prefix} {part}: {out.name} exists, skipping")
            continue
        bounds = finetune_duration if part in finetune_parts else (None, None)
        cuts, stats = make_cuts(manifest_dir, prefix, part, *bounds)
        save_manifest(cuts, out)
        done[part] = stats
        logging.info(f"{prefix} {part}: {stats.describe()}")
    out = cuts_path(manifest_dir, prefix, "pretrain")
    if out.is_file():
        logging.info(f"{prefix} pretrain: {out.name} exists, skipping")
        return done
    min_seconds, max_seconds = min_sample_size / SAMPLE_RATE, max_sample_size / SAMPLE_RATE
    pieces, total = {}, CutStats(0, 0.0, 0, 0, 0, max_seconds)
    for part in pretrain_parts:
        cuts, stats = make_cuts(manifest_dir, prefix, part, min_seconds, None, max_seconds)
        pieces[part] = cuts
        total.add(stats)
    if total.cuts == 0:
        raise ValueError(f"{prefix}: no pretraining cuts of at least {min_sample_size} samples "
                         f"({min_seconds:g} s, min_sample_size) in {pretrain_parts}")
    _check_unique_ids(pieces)
    combined = CutSet.from_cuts(c for piece in pieces.values() for c in piece)
    save_manifest(combined.shuffle(random.Random(seed)).to_eager(), out)
    done["pretrain"] = total
    logging.info(f"{prefix} pretrain ({' + '.join(pretrain_parts)}): {total.describe()}")
    return done


def _check_unique_ids(pieces: dict[str, CutSet]) -> None:
    """Parts combined into one cut set must not share cut ids (lhotse would fail on them)."""
    seen: dict[str, str] = {}
    for part, cuts in pieces.items():
        repeated: dict[str, list[str]] = {}
        for cut in cuts:
            if cut.id in seen:
                repeated.setdefault(seen[cut.id], []).append(cut.id)
            seen.setdefault(cut.id, part)
        for other, ids in repeated.items():
            raise ValueError(
                f"pretraining parts overlap: {part} repeats {len(ids)} cut id(s) of {other} "
                f"(e.g. {ids[0]}); list each part once in --pretrain-parts, or remove the copy")
