"""Checked reading of LibriSpeech-layout folders into lhotse manifests (recipe stage 1).

A LibriSpeech-layout folder holds ``<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` and one
``<spk>-<chapter>.trans.txt`` per chapter. ``scan_split`` is the one reader of such folders (stage
1, stage 2's Libri-Light folds and ``bin.decode --cuts FOLDER``): it reports, naming the file,
every transcript line without audio, audio without a transcript line, empty transcript,
transcript that is not UTF-8, unreadable, truncated or zero-length audio file and duplicate
utterance id, and skips hidden and stray files, saying how many. In stage 1, by
default any problem stops the stage before anything is written (``BadCorpusError``); with
``skip_bad`` the bad utterances are left out and counted. The good lines then go through lhotse's
own LibriSpeech recipe code (``lhotse.recipes.librispeech.parse_utterance``, what
``prepare_librispeech`` runs per line) and lhotse's ``fix_manifests`` / validation.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
from lhotse import RecordingSet, SupervisionSet, fix_manifests, validate_recordings_and_supervisions
from lhotse.recipes.librispeech import LIBRISPEECH, parse_utterance

from hourglass_w2v2.fileio import atomic_output
from hourglass_w2v2.models import SAMPLE_RATE

MAX_LISTED_PROBLEMS = 20


class BadCorpusError(ValueError):
    """The corpus has bad files; the message names each (up to ``MAX_LISTED_PROBLEMS``)."""


@dataclass
class Utterance:
    """One good transcript line: its id, its text and the audio file it names."""

    utt_id: str
    text: str
    audio: Path


@dataclass
class SplitScan:
    """Result of checking one LibriSpeech-layout folder."""

    split_dir: Path
    utterances: list[Utterance] = field(default_factory=list)  # good lines, in file order
    problems: list[str] = field(default_factory=list)  # "<file>: <what is wrong>"
    unpaired_audio: list[str] = field(default_factory=list)  # "<file>: ... no transcript line"
    other_rate: int = 0  # good files not at 16 kHz (stage 3 resamples them)

    @property
    def lines(self) -> list[str]:
        """The good lines as ``"<utt-id> <TEXT>"``, the form lhotse's recipe parses."""
        return [f"{u.utt_id} {u.text}" for u in self.utterances]


def list_problems(problems: list[str]) -> str:
    """The first ``MAX_LISTED_PROBLEMS`` problems one per indented line, then how many more."""
    shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    return "\n  " + shown + (f"\n  ... and {more} more" if more > 0 else "")


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
# word characters and apostrophes make words; everything else (punctuation, "_") separates them
_WORD_SEPARATOR = re.compile(r"(?:[^\w']|_)+")


def normalize_transcript(text: str) -> str:
    """A transcript written the way the recipe's transcripts are: LibriSpeech's convention.

    LibriSpeech and the synth corpus write upper-case words of letters, digits and apostrophes
    separated by single spaces. Here the text is NFKC-normalised, typographic apostrophes become
    ``'``, letters are upper-cased, every other character (punctuation, quotes, hyphens)
    separates words, and apostrophes quoting a whole word (``'word'``) are dropped. Text already
    in that form is returned unchanged.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).upper()
    words = []
    for word in _WORD_SEPARATOR.split(text):
        if len(word) > 1 and word[0] == word[-1] == "'":
            word = word.strip("'")
        if word.strip("'"):
            words.append(word)
    return " ".join(words)


def _check_audio(path: Path) -> tuple[str | None, int]:
    """(problem or None, sample rate) for one audio file; reads the header and the last frame."""
    if path.stat().st_size == 0:
        return f"{path}: zero-length audio file (0 bytes)", 0
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types for corrupt data
        return f"{path}: corrupt or unreadable audio file ({type(e).__name__}: {e})", 0
    if info.frames == 0:
        return f"{path}: zero-length audio file (no samples)", 0
    # A truncated FLAC keeps a valid header; decoding its last frame catches it.
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(info.frames - 1)
            complete = len(f.read(1)) == 1
    except Exception as e:
        return f"{path}: audio file is truncated or damaged ({type(e).__name__}: {e})", 0
    if not complete:
        return f"{path}: audio file is truncated or damaged", 0
    return None, info.samplerate


def _list_split(split_dir: Path, audio_suffixes: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """The ``*.trans.txt`` and audio files of a folder; logs what else it holds.

    Hidden files and folders (``.DS_Store``, macOS ``._*`` twins, which share the real files'
    suffixes but hold metadata) and ``__MACOSX`` folders are skipped; so are files of any other
    kind (README, notes, images), which are counted in one log line.
    """
    transcripts, audio, hidden, other = [], [], 0, []
    for path in sorted(split_dir.rglob("*")):
        parts = path.relative_to(split_dir).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            hidden += path.is_file()
        elif not path.is_file():
            continue
        elif path.name.endswith(".trans.txt"):
            transcripts.append(path)
        elif path.suffix in audio_suffixes:
            audio.append(path)
        else:
            other.append(path)
    if hidden:
        logging.info(f"{split_dir}: ignoring {hidden} hidden file(s) (.DS_Store, macOS ._* or "
                     "__MACOSX metadata)")
    if other:
        kinds = " / ".join(f"*{s}" for s in audio_suffixes)
        logging.warning(f"{split_dir}: ignoring {len(other)} file(s) that are neither {kinds} "
                        f"audio nor *.trans.txt transcripts, e.g. {other[0]}")
    return transcripts, audio


def scan_split(split_dir: str | Path, num_jobs: int = 4,
               audio_suffixes: tuple[str, ...] = (".flac",), normalize_text: bool = False,
               require_text: bool = True, check_layout: bool = True) -> SplitScan:
    """Check one LibriSpeech-layout folder (e.g. ``LibriSpeech/dev-clean``) and list problems.

    The defaults read a folder for lhotse's LibriSpeech recipe (stage 1): ``.flac`` audio,
    text as written, an empty transcript and an utterance id that does not match its
    ``<spk>/<chapter>`` folder are problems. ``bin.decode --cuts FOLDER`` also accepts other
    ``audio_suffixes``, normalises references with :func:`normalize_transcript` (logging how
    many lines changed), keeps empty references (``require_text=False``) and finds audio next
    to its transcript wherever that is (``check_layout=False``). Raises ``FileNotFoundError``
    for a missing folder or one without any ``*.trans.txt``: there is nothing to skip to then.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {split_dir}")
    trans_files, audio_files = _list_split(split_dir, audio_suffixes)
    if not trans_files:
        raise FileNotFoundError(
            f"no *.trans.txt transcript files under {split_dir} (expected LibriSpeech layout: "
            "<spk>/<chapter>/<spk>-<chapter>.trans.txt next to the audio)")
    scan = SplitScan(split_dir)
    candidates: dict[str, Utterance] = {}
    referenced: set[Path] = set()  # audio named by any transcript line, good or bad
    changed, num_lines = [], 0
    for trans in trans_files:
        try:
            text = trans.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            scan.problems.append(f"{trans}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at "
                                 f"offset {e.start}); re-extract it from the corpus archive")
            continue
        for line_no, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            num_lines += 1
            utt_id, _, written = raw.strip().partition(" ")
            written = written.strip()
            where = f"{trans}:{line_no}"
            words = normalize_transcript(written) if normalize_text else written
            if words != written:
                changed.append(f"{where}: {written!r} -> {words!r}")
            paths = [trans.parent / f"{utt_id}{suffix}" for suffix in audio_suffixes]
            referenced.update(paths)
            if require_text and not written:
                scan.problems.append(f"{where}: empty transcript for utterance {utt_id}")
                continue
            # lhotse finds the audio from the id (<spk>-<chapter>-<utt> -> <spk>/<chapter>/).
            if check_layout and trans.parent != split_dir / Path(utt_id.replace("-", "/")).parent:
                scan.problems.append(f"{where}: utterance id {utt_id} does not match the folder "
                                     f"{trans.parent.relative_to(split_dir)}")
                continue
            if utt_id in candidates:
                scan.problems.append(f"{where}: duplicate utterance id {utt_id}")
                continue
            audio = next((p for p in paths if p.is_file()), None)
            if audio is None:
                also = "".join(f" (nor {p.name})" for p in paths[1:])
                scan.problems.append(f"{where}: transcript line {utt_id} has no audio file "
                                     f"{paths[0]}{also}")
                continue
            candidates[utt_id] = Utterance(utt_id, words, audio)
    if changed:
        logging.info(f"{split_dir}: normalised {len(changed)} of {num_lines} transcript lines as "
                     "the recipe's transcripts are written (upper case, punctuation and quotes "
                     f"removed, typographic apostrophes made \"'\"), e.g. {'; '.join(changed[:3])}")
    scan.unpaired_audio = [f"{orphan}: audio file has no transcript line"
                           for orphan in sorted(set(audio_files) - referenced)]
    with ThreadPoolExecutor(num_jobs) as pool:
        checks = list(pool.map(_check_audio, [u.audio for u in candidates.values()]))
    for utt, (problem, rate) in zip(candidates.values(), checks, strict=True):
        if problem is not None:
            scan.problems.append(problem)
            continue
        scan.utterances.append(utt)
        scan.other_rate += rate != SAMPLE_RATE
    return scan


def mark_duplicates_across(scans: Iterable[SplitScan]) -> int:
    """Move utterances whose id a previous folder already has from ``lines`` to ``problems``.

    Folders that are combined into one manifest (Libri-Light's ``1h/*`` and ``9h``) must not
    share utterance ids; lhotse would stop with a bare ``AssertionError``. The first folder in
    ``scans`` order keeps the utterance, each later copy becomes a problem naming both files.
    Returns how many copies were found.
    """
    first: dict[str, Path] = {}
    found = 0
    for scan in scans:
        kept = []
        for utt in scan.utterances:
            if utt.utt_id in first:
                found += 1
                scan.problems.append(
                    f"{utt.audio}: duplicate utterance id {utt.utt_id}, also at "
                    f"{first[utt.utt_id]} (folders combined into one subset must not share "
                    "ids; remove one copy)")
                continue
            first[utt.utt_id] = utt.audio
            kept.append(utt)
        scan.utterances = kept
    return found


def check_scans(scans: Iterable[SplitScan], skip_bad: bool) -> int:
    """Raise ``BadCorpusError`` listing the problems, or (``skip_bad``) log and count them.

    Stage 1 counts audio without a transcript line as a problem too: a download missing lines
    of a transcript should not become a silently smaller corpus.
    """
    problems = [p for s in scans for p in s.problems + s.unpaired_audio]
    if not problems:
        return 0
    if not skip_bad:
        raise BadCorpusError(
            f"{len(problems)} bad utterance(s) or file(s), nothing written "
            "(rerun with --skip-bad, prepare.sh's --skip-bad true, to leave them out):"
            f"{list_problems(problems)}")
    logging.warning(f"skipping {len(problems)} bad utterance(s) or file(s):"
                    f"{list_problems(problems)}")
    return len(problems)


def manifests_from_scans(scans: Iterable[SplitScan], num_jobs: int = 4,
                         ) -> tuple[RecordingSet, SupervisionSet]:
    """Build validated lhotse manifests from the good lines of checked folders."""
    with ThreadPoolExecutor(num_jobs) as pool:
        results = list(pool.map(lambda a: parse_utterance(*a), [
            (scan.split_dir, line, {}) for scan in scans for line in scan.lines]))
    recordings = RecordingSet.from_recordings(r for r, _ in results)
    supervisions = SupervisionSet.from_segments(s for _, s in results)
    recordings, supervisions = fix_manifests(recordings, supervisions)
    validate_recordings_and_supervisions(recordings, supervisions)
    return recordings, supervisions


def save_manifest(manifest: Any, path: str | Path) -> None:
    """Write a lhotse manifest (any set with ``to_file``) through :func:`atomic_output`."""
    with atomic_output(path, keep_suffix=True) as tmp:
        manifest.to_file(tmp)


def manifest_paths(manifest_dir: str | Path, prefix: str, part: str) -> tuple[Path, Path]:
    """Paths of the recording and supervision manifests of one part."""
    manifest_dir = Path(manifest_dir)
    return (manifest_dir / f"{prefix}_recordings_{part}.jsonl.gz",
            manifest_dir / f"{prefix}_supervisions_{part}.jsonl.gz")


def write_manifests(recordings: RecordingSet, supervisions: SupervisionSet,
                    manifest_dir: str | Path, prefix: str, part: str) -> None:
    """Write one part's manifests; the supervisions go last, so they mark completeness."""
    rec_path, sup_path = manifest_paths(manifest_dir, prefix, part)
    rec_path.parent.mkdir(parents=True, exist_ok=True)
    save_manifest(recordings, rec_path)
    save_manifest(supervisions, sup_path)


def hours(supervisions: SupervisionSet) -> float:
    return sum(s.duration for s in supervisions) / 3600


def available_parts(corpus_dir: str | Path) -> list[str]:
    """LibriSpeech parts present under ``corpus_dir``, in LibriSpeech's canonical order."""
    return [p for p in LIBRISPEECH if (Path(corpus_dir) / p).is_dir()]


def prepare_corpus_manifests(corpus_dir: str | Path, manifest_dir: str | Path, prefix: str,
                             parts: list[str] | None = None, skip_bad: bool = False,
                             num_jobs: int = 4) -> dict[str, tuple[int, float]]:
    """Stage 1: recording/supervision manifests for each part of a LibriSpeech-layout corpus.

    ``parts`` defaults to every LibriSpeech part present. Parts whose manifests exist are
    skipped. All remaining parts are checked before any is written, so a bad file anywhere
    leaves no new output. Returns {part: (utterances, hours)} of the parts written.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder not found: {corpus_dir}")
    parts = parts or available_parts(corpus_dir)
    if not parts:
        raise FileNotFoundError(f"no LibriSpeech parts ({', '.join(LIBRISPEECH)}) in {corpus_dir}")
    todo = [p for p in parts
            if not all(f.is_file() for f in manifest_paths(manifest_dir, prefix, p))]
    for part in sorted(set(parts) - set(todo)):
        logging.info(f"{prefix} {part}: manifests exist, skipping")
    scans = {part: scan_split(corpus_dir / part, num_jobs) for part in todo}
    skipped = check_scans(scans.values(), skip_bad)
    for part, scan in scans.items():
        if not scan.lines:
            raise BadCorpusError(f"{corpus_dir / part}: no usable utterances, nothing written")
    written = {}
    for part, scan in scans.items():
        recordings, supervisions = manifests_from_scans([scan], num_jobs)
        write_manifests(recordings, supervisions, manifest_dir, prefix, part)
        written[part] = (len(supervisions), hours(supervisions))
        logging.info(f"{prefix} {part}: {len(supervisions)} utterances, "
                     f"{len({s.speaker for s in supervisions})} speakers, "
                     f"{written[part][1]:.3f} h, {scan.other_rate} not at {SAMPLE_RATE} Hz "
                     "(resampled in stage 3)")
    if skipped:
        logging.warning(f"{skipped} bad utterance(s) or file(s) were skipped")
    return written
