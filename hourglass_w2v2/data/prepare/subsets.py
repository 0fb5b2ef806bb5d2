"""Libri-Light limited-resource fine-tuning subsets (recipe stage 2).

Libri-Light's ``librispeech_finetuning`` folder holds six 10-minute folds ``1h/{0..5}/{clean,
other}`` and ``9h/{clean,other}``, each in the LibriSpeech layout. The subsets are the
conventional ones of the wav2vec 2.0 paper: ``train-10min`` = fold ``1h/0``, ``train-1h`` = all
of ``1h``, ``train-10h`` = ``1h`` + ``9h``. For the synthetic corpus the same nested subsets are
drawn from ``train-clean-100`` (the pretraining pool), scaled to the pool's size, balanced over
speakers and never using a speaker of the dev/test sets.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from lhotse import RecordingSet, SupervisionSet, load_manifest

from hourglass_w2v2.data.prepare.librispeech import (
    BadCorpusError,
    check_scans,
    hours,
    manifest_paths,
    manifests_from_scans,
    mark_duplicates_across,
    scan_split,
    write_manifests,
)

FINETUNE_SUBSETS = ("train-10min", "train-1h", "train-10h")
# Libri-Light sizes in seconds, which synth subsets scale.
FINETUNE_SECONDS = {"train-10min": 600.0, "train-1h": 3600.0, "train-10h": 36000.0}


def librilight_split_dirs(finetuning_dir: str | Path) -> dict[str, list[Path]]:
    """The LibriSpeech-layout folders making up each subset; raises if any is missing."""
    root = Path(finetuning_dir)
    fold0 = [root / "1h" / "0" / kind for kind in ("clean", "other")]
    one_hour = [root / "1h" / str(fold) / kind for fold in range(6) for kind in ("clean", "other")]
    nine_hours = [root / "9h" / kind for kind in ("clean", "other")]
    missing = [d for d in one_hour + nine_hours if not d.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"Libri-Light fine-tuning folder(s) missing under {root}: "
            + ", ".join(str(d.relative_to(root)) for d in missing)
            + " (expected 1h/{0..5}/{clean,other} and 9h/{clean,other}"
            " from librispeech_finetuning.tgz)")
    return {"train-10min": fold0, "train-1h": one_hour, "train-10h": one_hour + nine_hours}


def prepare_librilight_subsets(finetuning_dir: str | Path, manifest_dir: str | Path,
                               prefix: str = "librispeech", skip_bad: bool = False,
                               num_jobs: int = 4) -> dict[str, tuple[int, float]]:
    """Stage 2 for LibriSpeech: manifests of the three Libri-Light subsets.

    Every folder is checked (as in stage 1) before anything is written. Returns
    {subset: (utterances, hours)} of the subsets written; existing ones are skipped.
    """
    splits = librilight_split_dirs(finetuning_dir)
    todo = [s for s in FINETUNE_SUBSETS
            if not all(p.is_file() for p in manifest_paths(manifest_dir, prefix, s))]
    if not todo:
        logging.info(f"{prefix} fine-tuning subsets exist, skipping")
        return {}
    scans = {d: scan_split(d, num_jobs) for d in splits["train-10h"]}
    mark_duplicates_across(scans.values())
    check_scans(scans.values(), skip_bad)
    written = {}
    for subset in todo:
        recordings, supervisions = manifests_from_scans([scans[d] for d in splits[subset]],
                                                        num_jobs)
        if len(supervisions) == 0:
            raise BadCorpusError(f"{finetuning_dir}: no usable utterances for {subset}")
        write_manifests(recordings, supervisions, manifest_dir, prefix, subset)
        written[subset] = _log_subset(prefix, subset, supervisions)
    return written


def _log_subset(prefix: str, subset: str, supervisions: SupervisionSet) -> tuple[int, float]:
    logging.info(f"{prefix} {subset}: {len(supervisions)} utterances, "
                 f"{len({s.speaker for s in supervisions})} speakers, {hours(supervisions):.3f} h")
    return len(supervisions), hours(supervisions)


def speaker_balanced_order(supervisions: SupervisionSet, seed: int) -> list:
    """Supervisions in round-robin speaker order (speakers and their utterances shuffled)."""
    rng = random.Random(seed)
    by_speaker: dict[str, list] = {}
    for sup in sorted(supervisions, key=lambda s: s.id):
        by_speaker.setdefault(sup.speaker, []).append(sup)
    queues = [by_speaker[spk] for spk in sorted(by_speaker)]
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    order = []
    while queues:
        order += [q.pop() for q in queues]
        queues = [q for q in queues if q]
    return order


def draw_nested_subsets(supervisions: SupervisionSet, target_seconds: dict[str, float],
                        seed: int = 0) -> dict[str, SupervisionSet]:
    """Nested subsets (each a prefix of one speaker-balanced order) of the given durations.

    A subset takes utterances until its duration reaches the target (or the pool runs out),
    so smaller subsets are contained in larger ones, as Libri-Light's are.
    """
    order = speaker_balanced_order(supervisions, seed)
    subsets = {}
    for name, target in target_seconds.items():
        taken, total = [], 0.0
        for sup in order:
            if total >= target:
                break
            taken.append(sup)
            total += sup.duration
        subsets[name] = SupervisionSet.from_segments(taken)
    return subsets


def prepare_scaled_subsets(manifest_dir: str | Path, prefix: str = "synth",
                           pool: str = "train-clean-100",
                           test_parts: tuple[str, ...] = ("dev-clean", "test-clean", "test-other"),
                           scale: float | None = None, seed: int = 0,
                           ) -> dict[str, tuple[int, float]]:
    """Stage 2 for the synthetic corpus: Libri-Light-like subsets drawn from the ``pool`` part.

    Sizes are Libri-Light's times ``scale``; by default ``scale`` = pool hours / 10, so
    ``train-10h`` is the whole pool and the others keep Libri-Light's 1:6:60 ratios. Speakers
    of ``test_parts`` (those whose manifests exist) are excluded from the pool.
    """
    todo = [s for s in FINETUNE_SUBSETS
            if not all(p.is_file() for p in manifest_paths(manifest_dir, prefix, s))]
    if not todo:
        logging.info(f"{prefix} fine-tuning subsets exist, skipping")
        return {}
    rec_path, sup_path = manifest_paths(manifest_dir, prefix, pool)
    if not sup_path.is_file():
        raise FileNotFoundError(f"{sup_path} not found: run stage 1 first")
    recordings: RecordingSet = load_manifest(rec_path)
    supervisions: SupervisionSet = load_manifest(sup_path)
    test_speakers = set()
    for part in test_parts:
        part_sup = manifest_paths(manifest_dir, prefix, part)[1]
        if part_sup.is_file():
            test_speakers |= {s.speaker for s in load_manifest(part_sup)}
    supervisions = supervisions.filter(lambda s: s.speaker not in test_speakers).to_eager()
    pool_hours = hours(supervisions)
    scale = scale if scale is not None else pool_hours / 10.0
    targets = {name: FINETUNE_SECONDS[name] * scale for name in FINETUNE_SUBSETS}
    logging.info(f"{prefix}: drawing fine-tuning subsets from {pool} ({pool_hours:.3f} h, "
                 f"{len(test_speakers)} test speakers excluded), scale {scale:.4g} of Libri-Light")
    written = {}
    for name, subset in draw_nested_subsets(supervisions, targets, seed).items():
        if name not in todo:
            continue
        subset_recordings = RecordingSet.from_recordings(
            recordings[s.recording_id] for s in subset)
        write_manifests(subset_recordings, subset, manifest_dir, prefix, name)
        written[name] = _log_subset(prefix, name, subset)
    return written
