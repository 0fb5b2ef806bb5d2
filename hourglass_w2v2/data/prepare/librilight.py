"""Libri-Light's unlabeled parts as pretraining cuts (LibriSpeech recipe, stage 6).

Libri-Light ``small`` / ``medium`` / ``large`` hold ``<part>/<speaker>/<book>/<file>.flac``,
audiobook chapters of up to an hour, each with ``<file>.json`` whose ``voice_activity`` lists
the speech stretches the corpus's VAD found. lhotse's ``librilight`` recipe reads a part into a
``RecordingSet`` and one ``SupervisionSegment`` per VAD stretch; this module cuts the chapters
into training segments, either by merging consecutive VAD stretches into segments of at most
``max_duration`` seconds (the silence outside the merged stretches is left out), or into fixed
windows with overlap, and writes
``librilight_cuts_<part>.jsonl.gz`` (no supervisions: the audio is unlabeled).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet, MonoCut, Recording, SupervisionSet
from lhotse.recipes.librilight import LIBRILIGHT, _prepare_subset

from hourglass_w2v2.data.prepare.cuts import MIN_SAMPLE_SIZE, cuts_path
from hourglass_w2v2.data.prepare.librispeech import save_manifest
from hourglass_w2v2.models import SAMPLE_RATE

SEGMENT_MODES = ("vad", "window")


class BadLibriLightError(ValueError):
    """The Libri-Light tree is not in the layout the recipe reads; the message says where."""


@dataclass
class SegmentStats:
    """What cutting one part made: inputs, outputs and what was left out, in counts and hours."""

    part: str
    recordings: int = 0
    vad_segments: int = 0
    recording_hours: float = 0.0
    cuts: int = 0
    cut_hours: float = 0.0
    too_short: int = 0  # segments under min_duration, dropped
    too_short_hours: float = 0.0

    def describe(self) -> str:
        """One log line with every count."""
        return (f"librilight {self.part}: {self.recordings} recordings "
                f"({self.recording_hours:.3f} h, {self.vad_segments} VAD segments) -> "
                f"{self.cuts} cuts, {self.cut_hours:.3f} h; dropped {self.too_short} segments "
                f"shorter than the minimum ({self.too_short_hours:.3f} h)")


def check_tree(corpus_dir: str | Path, part: str) -> list[Path]:
    """The FLAC files of ``<corpus_dir>/<part>``, after checking the layout lhotse's recipe needs.

    Raises :class:`BadLibriLightError` naming the folder when the part is missing or holds no
    FLAC, each FLAC without its JSON (up to 10), and a path containing ``flac`` above the
    file name (the recipe finds the JSON by replacing every ``flac`` in the path).
    """
    if part not in LIBRILIGHT:
        raise BadLibriLightError(f"unknown Libri-Light part '{part}' (one of {LIBRILIGHT})")
    part_dir = Path(corpus_dir) / part
    if not part_dir.is_dir():
        held = [p for p in LIBRILIGHT if (Path(corpus_dir) / p).is_dir()]
        raise BadLibriLightError(
            f"{part_dir} does not exist (--librilight-dir {corpus_dir} holds: "
            f"{', '.join(held) or 'no Libri-Light part'}); unpack {part}.tar there")
    flacs = sorted(part_dir.rglob("*.flac"))
    if not flacs:
        raise BadLibriLightError(f"{part_dir} holds no .flac file (expected "
                                 f"{part}/<speaker>/<book>/<file>.flac)")
    if "flac" in str(part_dir.resolve()):
        raise BadLibriLightError(
            f"{part_dir.resolve()}: the path contains 'flac', which lhotse's librilight recipe "
            "replaces to find each JSON; move or link the tree to a path without it")
    missing = [p for p in flacs if not p.with_suffix(".json").is_file()]
    if missing:
        shown = "\n  ".join(str(p.with_suffix(".json")) for p in missing[:10])
        raise BadLibriLightError(
            f"{len(missing)} of {len(flacs)} files in {part_dir} have no voice-activity JSON "
            f"next to them (restore them from {part}.tar):\n  {shown}")
    return flacs


def merge_vad(spans: Sequence[tuple[float, float]], max_duration: float
              ) -> list[tuple[float, float]]:
    """Consecutive speech ``(start, end)`` spans merged into segments of at most ``max_duration``.

    A segment grows by the next span while it stays within ``max_duration`` from its first
    span's start; a span longer than ``max_duration`` on its own is split into equal pieces.
    """
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and end - out[-1][0] <= max_duration:
            out[-1] = (out[-1][0], end)
            continue
        pieces = max(1, int(-(-(end - start) // max_duration)))  # ceil
        step = (end - start) / pieces
        out.extend((start + i * step, start + (i + 1) * step) for i in range(pieces))
    return out


def fixed_windows(duration: float, window: float, overlap: float) -> list[tuple[float, float]]:
    """``(start, end)`` windows of ``window`` seconds every ``window - overlap`` seconds.

    The last window ends at ``duration`` (it overlaps its predecessor more when the hop does
    not divide the length); a recording shorter than ``window`` is one window.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"window overlap {overlap} s must be >= 0 and < the window {window} s")
    if duration <= window:
        return [(0.0, duration)]
    hop = window - overlap
    starts = [i * hop for i in range(int((duration - window) // hop) + 1)]
    if starts[-1] + window < duration - 1e-6:
        starts.append(duration - window)
    return [(s, s + window) for s in starts]


def segment_cuts(recordings: Sequence[Recording], supervisions: SupervisionSet, mode: str,
                 max_duration: float, min_duration: float, overlap: float,
                 stats: SegmentStats) -> Iterator[MonoCut]:
    """The training cuts of ``recordings`` (``mode`` vad or window), counting into ``stats``.

    Cut ids are ``<recording id>-<start in centiseconds>`` so they stay unique and readable
    when parts are combined; no cut carries a supervision.
    """
    if mode not in SEGMENT_MODES:
        raise ValueError(f"segment mode '{mode}' is not one of {SEGMENT_MODES}")
    by_recording: dict[str, list[tuple[float, float]]] = {}
    for s in supervisions:
        by_recording.setdefault(s.recording_id, []).append((s.start, s.end))
    for rec in recordings:
        spans = by_recording.get(rec.id, [])
        stats.recordings += 1
        stats.vad_segments += len(spans)
        stats.recording_hours += rec.duration / 3600
        if mode == "vad":
            pieces = merge_vad(spans, max_duration)
        else:
            pieces = fixed_windows(rec.duration, max_duration, overlap)
        for start, end in pieces:
            start, end = max(0.0, start), min(rec.duration, end)
            duration = round(end - start, 4)
            if duration < min_duration:
                stats.too_short += 1
                stats.too_short_hours += max(duration, 0.0) / 3600
                continue
            stats.cuts += 1
            stats.cut_hours += duration / 3600
            yield MonoCut(id=f"{rec.id}-{round(start * 100):07d}", start=round(start, 4),
                          duration=duration, channel=0, recording=rec)


def prepare_librilight_part(corpus_dir: str | Path, part: str, manifest_dir: str | Path,
                            mode: str = "vad", max_duration: float = 30.0,
                            min_duration: float = MIN_SAMPLE_SIZE / SAMPLE_RATE,
                            overlap: float = 0.0, num_jobs: int = 1) -> SegmentStats | None:
    """Stage 6 for one part: ``librilight_{recordings,supervisions,cuts}_<part>.jsonl.gz``.

    Recordings and VAD supervisions come from lhotse's ``librilight`` recipe (its per-part
    reader, which ``prepare_librilight`` calls for every part), written atomically; then the
    segment cuts. Returns None, doing nothing, when the cut set exists already.
    """
    out = cuts_path(manifest_dir, "librilight", part)
    if out.is_file():
        logging.info("librilight %s: %s exists, skipping", part, out.name)
        return None
    check_tree(corpus_dir, part)
    recordings, supervisions = _prepare_subset(part, Path(corpus_dir), num_jobs)
    other = {r.sampling_rate for r in recordings} - {SAMPLE_RATE}
    if other:
        raise BadLibriLightError(
            f"{Path(corpus_dir) / part}: recordings at {sorted(other)} Hz; Libri-Light is "
            f"{SAMPLE_RATE} Hz, so this is not Libri-Light audio")
    manifest_dir = Path(manifest_dir)
    save_manifest(recordings, manifest_dir / f"librilight_recordings_{part}.jsonl.gz")
    save_manifest(supervisions, manifest_dir / f"librilight_supervisions_{part}.jsonl.gz")
    stats = SegmentStats(part)
    cuts = CutSet.from_cuts(segment_cuts(recordings, supervisions, mode, max_duration,
                                         min_duration, overlap, stats))
    if stats.cuts == 0:
        raise BadLibriLightError(
            f"librilight {part}: no segment of at least {min_duration:g} s in "
            f"{stats.recordings} recordings (check the JSON files' voice_activity)")
    save_manifest(cuts, out)
    logging.info(stats.describe())
    return stats
