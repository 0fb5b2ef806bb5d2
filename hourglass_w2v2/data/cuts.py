"""Raw-audio lhotse cut sets (recipe stage 3).

One cut per recording with its supervision; no features, the model reads the waveform. Cuts of
recordings not at 16 kHz are resampled (lhotse resamples lazily on load) and counted. Duration
filters follow wav2vec 2.0: pretraining keeps 2-15.6 s (fairseq's ``min_sample_size`` 32000 and
``max_sample_size`` 250000 samples), fine-tuning subsets drop only extreme lengths, dev/test keep
everything so every utterance is scored. The combined ``pretrain`` set holds the training parts
(unlabeled use; supervisions stay attached, harmlessly), filtered and shuffled with a seed.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet, load_manifest, validate
from lhotse.utils import fastcopy

from hourglass_w2v2.data.librispeech import SAMPLE_RATE, atomic_to_file, manifest_paths

PRETRAIN_MIN_SECONDS = 2.0
PRETRAIN_MAX_SECONDS = 15.6


@dataclass
class CutStats:
    """What ``make_cuts`` did to one part."""

    cuts: int
    hours: float
    resampled: int
    too_short: int
    too_long: int

    def describe(self) -> str:
        return (f"{self.cuts} cuts, {self.hours:.3f} h, {self.resampled} resampled to "
                f"{SAMPLE_RATE} Hz, dropped {self.too_short} too short / {self.too_long} too long")


def cuts_path(manifest_dir: str | Path, prefix: str, part: str) -> Path:
    return Path(manifest_dir) / f"{prefix}_cuts_{part}.jsonl.gz"


def make_cuts(manifest_dir: str | Path, prefix: str, part: str,
              min_duration: float | None = None, max_duration: float | None = None,
              ) -> tuple[CutSet, CutStats]:
    """Cuts of one part from its stage-1/2 manifests: resampled to 16 kHz, duration-filtered,
    validated (``lhotse.validate``). Durations are in seconds; None disables that bound."""
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
    return cuts, stats


def prepare_cut_sets(manifest_dir: str | Path, prefix: str, parts: list[str],
                     pretrain_parts: list[str],
                     pretrain_duration: tuple[float, float] = (PRETRAIN_MIN_SECONDS,
                                                               PRETRAIN_MAX_SECONDS),
                     finetune_parts: tuple[str, ...] = (),
                     finetune_duration: tuple[float, float] = (0.5, 30.0),
                     seed: int = 42) -> dict[str, CutStats]:
    """Stage 3: ``<prefix>_cuts_<part>.jsonl.gz`` for each part plus the combined ``pretrain``.

    ``finetune_parts`` get ``finetune_duration`` bounds, other parts none; ``pretrain`` combines
    ``pretrain_parts`` within ``pretrain_duration``, shuffled with ``seed``. Existing outputs are
    skipped; each file is written to a temporary name and renamed.
    """
    done: dict[str, CutStats] = {}
    for part in parts:
        out = cuts_path(manifest_dir, prefix, part)
        if out.is_file():
            logging.info(f"{prefix} {part}: {out.name} exists, skipping")
            continue
        bounds = finetune_duration if part in finetune_parts else (None, None)
        cuts, stats = make_cuts(manifest_dir, prefix, part, *bounds)
        atomic_to_file(cuts, out)
        done[part] = stats
        logging.info(f"{prefix} {part}: {stats.describe()}")
    out = cuts_path(manifest_dir, prefix, "pretrain")
    if out.is_file():
        logging.info(f"{prefix} pretrain: {out.name} exists, skipping")
        return done
    pieces, total = [], CutStats(0, 0.0, 0, 0, 0)
    for part in pretrain_parts:
        cuts, stats = make_cuts(manifest_dir, prefix, part, *pretrain_duration)
        pieces.append(cuts)
        for name in ("cuts", "hours", "resampled", "too_short", "too_long"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
    if not pieces or total.cuts == 0:
        raise ValueError(f"{prefix}: no pretraining cuts within {pretrain_duration} s in "
                         f"{pretrain_parts}")
    combined = CutSet.from_cuts(c for piece in pieces for c in piece)
    atomic_to_file(combined.shuffle(random.Random(seed)).to_eager(), out)
    done["pretrain"] = total
    logging.info(f"{prefix} pretrain ({' + '.join(pretrain_parts)}): {total.describe()}")
    return done
