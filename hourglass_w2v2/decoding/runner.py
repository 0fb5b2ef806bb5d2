"""Decode test sets with a fine-tuned CTC checkpoint and write scored results (run.sh stage 3).

The acoustic model runs once per batch of cuts (sorted by duration, padded up to
``max_duration`` seconds of audio); every requested method then searches the same log-probs.
Per test set and method this writes, under ``<exp>/decode/<method>/``, icefall's ``recogs-``,
``errs-``, ``wer-summary-`` and ``cer-summary-`` files plus ``rtf-<test>.json`` (audio seconds,
model and search seconds, real-time factor) and, when utterances were left out,
``skipped-<test>.txt``. A test set's files are written only after all of it is decoded, as one
group (:func:`hourglass_w2v2.scoring.write_group`), so an interrupted run leaves no partial or
mixed results and a rerun completes them. Each summary ends with ``# name: value`` lines naming
the checkpoint, its update and the test set's source.

Bad input stops with a :class:`DecodeInputError` naming the file and the fix: a lang dir whose
units differ from the ones the checkpoint was trained with, an external test set named like a
recipe one, a transcript line without audio, unreadable audio (``skip_bad`` decodes the rest
and lists what was left out).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet, Recording, SupervisionSegment
from lhotse.cut import Cut
from tqdm import tqdm

from hourglass_w2v2.data.batching import make_batches
from hourglass_w2v2.data.datasets import CorruptAudioError, CtcDataset, cut_set_path
from hourglass_w2v2.data.prepare.librispeech import list_problems, scan_split
from hourglass_w2v2.decoding.methods import DecodeInputError, Decoder
from hourglass_w2v2.models import SAMPLE_RATE
from hourglass_w2v2.scoring import (
    Result,
    format_summary,
    read_summary,
    read_summary_record,
    score_results,
    write_group,
)

AUDIO_SUFFIXES = (".flac", ".wav")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass
class TestSet:
    """One test set to decode: its name in the result files, cuts and where they came from.

    ``source`` is recorded in every summary, so results of another set under the same name are
    never overwritten; ``left_out`` lists ``"<file>: <why>"`` for utterances not decoded.
    """

    name: str
    cuts: CutSet
    source: str
    left_out: list[str] = field(default_factory=list)


def librispeech_folder_cuts(folder: str | Path, skip_bad: bool = False) -> tuple[CutSet, list[str]]:
    """Cuts of a folder in LibriSpeech layout (``*.trans.txt`` next to ``<utt>.flac``/``.wav``).

    The folder is read by :func:`~hourglass_w2v2.data.prepare.librispeech.scan_split`, as
    stage 1 reads one, with references normalised as the recipe's transcripts are written. Returns
    the cuts and ``"<file>: <why>"`` for each utterance left out. Audio without a transcript line
    cannot be scored: it is left out and logged. Any other problem the reader names (a transcript
    line without audio, a duplicate utterance id, unreadable, truncated or zero-length audio, a
    transcript that is not UTF-8) stops with a :class:`DecodeInputError` listing every one; with
    ``skip_bad`` those utterances are left out instead.
    """
    folder = Path(folder)
    scan = scan_split(folder, audio_suffixes=AUDIO_SUFFIXES, normalize_text=True,
                      require_text=False, check_layout=False)
    if scan.unpaired_audio:
        logging.warning(
            "%s: %d audio file(s) have no transcript line and are left out:%s",
            folder,
            len(scan.unpaired_audio),
            list_problems(scan.unpaired_audio),
        )
    if scan.problems and not skip_bad:
        raise DecodeInputError(
            f"{folder}: {len(scan.problems)} utterance(s) cannot be decoded:"
            f"{list_problems(scan.problems)}\n"
            "fix or remove them, or pass --skip-bad to decode the rest and list them in "
            "skipped-<test>.txt next to the summary"
        )
    if not scan.utterances:
        raise DecodeInputError(f"{folder}: no utterance has both a transcript line and audio")
    cuts = []
    for utt in scan.utterances:
        rec = Recording.from_file(utt.audio, recording_id=utt.utt_id)
        cut = rec.to_cut()
        cut.supervisions = [
            SupervisionSegment(
                id=utt.utt_id,
                recording_id=utt.utt_id,
                start=0.0,
                duration=rec.duration,
                text=utt.text,
                speaker=utt.utt_id.split("-")[0],
            )
        ]
        cuts.append(cut)
    return CutSet.from_cuts(cuts), scan.problems + scan.unpaired_audio


def open_test_set(arg: str | Path, skip_bad: bool = False) -> TestSet:
    """The test set of a ``--cuts`` argument: ``[NAME=]PATH`` to a cut set file or a folder.

    Without ``NAME``, the name is the file name without ``.jsonl.gz`` (and without a
    ``<corpus>_cuts_`` prefix), or the folder name. The folder is read by
    :func:`librispeech_folder_cuts` (``skip_bad`` as there).
    """
    arg = str(arg)
    name, sep, rest = arg.partition("=")
    if sep and not Path(arg).exists() and "/" not in name:
        path = Path(rest)
    else:
        name, path = "", Path(arg)
    if path.is_dir():
        name = name or path.name
        cuts, left_out = librispeech_folder_cuts(path, skip_bad)
    elif path.is_file():
        if not name:
            name = path.name
            for suffix in (".jsonl.gz", ".jsonl", ".json.gz", ".json"):
                if name.endswith(suffix):
                    name = name[: -len(suffix)]
                    break
            name = name.split("_cuts_", 1)[-1]
        cuts, left_out = CutSet.from_file(path), []
    else:
        raise DecodeInputError(f"--cuts {path} is neither a cut set file nor a folder")
    if not _NAME_RE.match(name):
        raise DecodeInputError(
            f"--cuts {arg}: test set name {name!r} cannot name result files (use letters, "
            "digits, '.', '_', '+', '-'); give one with --cuts NAME=PATH"
        )
    return TestSet(name, cuts, str(path.resolve()), left_out)


def recipe_test_set(manifest_dir: str | Path, corpus: str, name: str) -> TestSet:
    """The cut set of a recipe test set; a missing file is an error naming it."""
    path = cut_set_path(manifest_dir, corpus, name)
    if not path.is_file():
        raise FileNotFoundError(f"test set {name}: {path} does not exist (run prepare.sh stage 3)")
    return TestSet(name, CutSet.from_file(path), f"recipe test set {path.name}")


def check_test_set_names(
    recipe: list[TestSet], external: list[TestSet], manifest_dir: str | Path, corpus: str
) -> None:
    """Refuse external test sets whose results would overwrite another set's.

    An external set may not take the name of a recipe set (one decoded now or any
    ``<corpus>_cuts_<name>.jsonl.gz`` in ``manifest_dir``), nor share a name with another one.
    The error says how to rename it (``--cuts NAME=PATH``).
    """
    taken = {t.name: t.source for t in recipe}
    for path in Path(manifest_dir).glob(f"{corpus}_cuts_*.jsonl.gz"):
        name = path.name[len(f"{corpus}_cuts_") : -len(".jsonl.gz")]
        taken.setdefault(name, f"recipe test set {path}")
    seen: dict[str, str] = {}
    for t in external:
        if t.name in taken:
            raise DecodeInputError(
                f"--cuts {t.source}: its name {t.name!r} is that of the {taken[t.name]}, whose "
                "results it would overwrite; give it another name with --cuts NAME=PATH, e.g. "
                f"--cuts ext-{t.name}={t.source}"
            )
        if t.name in seen:
            raise DecodeInputError(
                f"--cuts {seen[t.name]} and {t.source} are both named {t.name!r}, so one's "
                "results would overwrite the other's; name them with --cuts NAME=PATH"
            )
        seen[t.name] = t.source


def check_previous_results(out_dir: str | Path, test_set: TestSet) -> None:
    """Refuse to replace results that a summary records as coming from another source."""
    summary = Path(out_dir) / f"wer-summary-{test_set.name}.txt"
    if not summary.is_file():
        return
    try:
        previous = read_summary_record(summary).get("test set")
    except ValueError:
        return  # not a summary we can read: nothing of value to protect, decode replaces it
    if previous is not None and previous != test_set.source:
        raise DecodeInputError(
            f"{summary} holds results of {previous}; decoding {test_set.source} under the name "
            f"{test_set.name!r} would replace them: give it another name with --cuts NAME=PATH, "
            "or delete the old results first"
        )


@dataclass
class Timing:
    """Seconds spent per stage, for the real-time factor."""

    audio: float = 0.0
    model: float = 0.0
    search: dict[str, float] = field(default_factory=dict)


def _load_batch(
    dataset: CtcDataset, cuts: list[Cut], skip_bad: bool, left_out: list[str], test_set: str
) -> dict | None:
    """``dataset[cuts]``; a cut whose audio cannot be read is an error or (``skip_bad``) listed.

    Only a batch holding an unreadable cut is loaded again cut by cut, to find which ones.
    """
    try:
        return dataset[CutSet.from_cuts(cuts)]
    except CorruptAudioError as e:
        if not skip_bad:
            raise DecodeInputError(
                f"test set {test_set}: {e}; fix or remove it, or pass --skip-bad to decode the "
                "rest and list it in skipped-<test>.txt next to the summary"
            ) from e
    good = []
    for cut in cuts:
        try:
            dataset[CutSet.from_cuts([cut])]
        except CorruptAudioError as e:
            left_out.append(str(e))
        else:
            good.append(cut)
    return dataset[CutSet.from_cuts(good)] if good else None


def iter_log_probs(
    model: torch.nn.Module,
    cuts: CutSet,
    max_duration: float,
    normalize: bool,
    device: torch.device,
    timing: Timing,
    desc: str = "",
    skip_bad: bool = False,
    left_out: list[str] | None = None,
) -> Iterator[tuple[str, str, np.ndarray]]:
    """Yield ``(cut_id, reference text, (T, V) log-probs)`` per cut, batched through the model.

    A cut whose audio cannot be read raises :class:`DecodeInputError` naming it and its file;
    with ``skip_bad`` it is appended to ``left_out`` as ``"cut <id>: <why>"`` and not yielded.
    """
    left_out = [] if left_out is None else left_out
    cut_list = [c if c.sampling_rate == SAMPLE_RATE else c.resample(SAMPLE_RATE) for c in cuts]
    dataset = CtcDataset(encode=lambda text: [], normalize=normalize)
    for batch_cuts in tqdm(make_batches(cut_list, max_duration), desc=desc, unit="batch"):
        batch = _load_batch(dataset, batch_cuts, skip_bad, left_out, desc)
        if batch is None:
            continue
        timing.audio += batch["num_samples"] / SAMPLE_RATE
        start = time.perf_counter()
        with torch.inference_mode():
            out = model(batch["waveforms"].to(device), batch["padding_mask"].to(device))
            log_probs = out.logits.float().log_softmax(dim=-1)
            if out.padding_mask is None:
                lengths = torch.full((log_probs.shape[0],), log_probs.shape[1])
            else:
                lengths = (~out.padding_mask).sum(dim=1)
            log_probs, lengths = log_probs.cpu().numpy(), lengths.cpu().tolist()
        timing.model += time.perf_counter() - start
        for i, (cut_id, text) in enumerate(zip(batch["cut_ids"], batch["texts"], strict=True)):
            yield cut_id, text, log_probs[i, : lengths[i]]


def _previous_files(out_dir: Path, test_set: str) -> list[str]:
    """Names of the files a previous decode of ``test_set`` wrote (from its summary's keys)."""
    names = [f"skipped-{test_set}.txt", f"rtf-{test_set}.json"]
    try:
        keys = read_summary(out_dir / f"wer-summary-{test_set}.txt")
    except (OSError, ValueError):
        return names
    for key in keys:
        names += [f"{p}-{test_set}-{key}.txt" for p in ("recogs", "errs", "errs-cer")]
    return names


def decode_test_set(
    model: torch.nn.Module,
    test_set: TestSet,
    decoders: list[Decoder],
    decode_dir: str | Path,
    max_duration: float = 60.0,
    normalize: bool = False,
    device: torch.device | str = "cpu",
    skip_bad: bool = False,
    record: dict[str, object] | None = None,
) -> dict[str, dict[str, float]]:
    """Decode one test set with every decoder and write its scored results.

    Per decoder the files are written as one group, the summaries last, each summary ending
    with ``record`` (e.g. the checkpoint and its update), the test set's source and what was
    left out. Results another source wrote under the same name are never replaced
    (:func:`check_previous_results`). Returns ``{decoder name: {key: WER}}``.
    """
    name = test_set.name
    for d in decoders:
        check_previous_results(Path(decode_dir) / d.name, test_set)
    timing = Timing()
    left_out = list(test_set.left_out)
    results: dict[str, dict[str, list[Result]]] = {
        d.name: {k: [] for k in d.keys()} for d in decoders
    }
    for cut_id, text, log_probs in iter_log_probs(
        model, test_set.cuts, max_duration, normalize, device, timing, name, skip_bad, left_out
    ):
        ref = text.split()
        for d in decoders:
            start = time.perf_counter()
            hyps = d.decode(log_probs)
            timing.search[d.name] = timing.search.get(d.name, 0.0) + time.perf_counter() - start
            for key, words in hyps.items():
                results[d.name][key].append((cut_id, ref, words))
    if timing.audio == 0:
        raise DecodeInputError(f"test set {name} ({test_set.source}) has no decodable cuts")
    full_record = {**(record or {}), "test set": test_set.source}
    if left_out:
        full_record["left out"] = f"{len(left_out)} utterance(s), listed in skipped-{name}.txt"
        logging.warning(
            "%s: left out %d utterance(s), listed in skipped-%s.txt next to each summary:%s",
            name,
            len(left_out),
            name,
            list_problems(left_out),
        )
    summary = {}
    for d in decoders:
        out_dir = Path(decode_dir) / d.name
        files: dict[str, str] = {}
        wers, cers = {}, {}
        for key, res in results[d.name].items():
            try:
                wer, cer, key_files = score_results(name, key, res)
            except ValueError as e:  # no reference words at all
                raise DecodeInputError(f"{e} (from {test_set.source})") from e
            files.update(key_files)
            wers[key], cers[key] = wer.error_rate, cer.error_rate
        search = timing.search.get(d.name, 0.0)
        rtf = {
            "audio_seconds": round(timing.audio, 3),
            "model_seconds": round(timing.model, 3),
            "search_seconds": round(search, 3),
            "rtf": round((timing.model + search) / timing.audio, 5),
            "search_rtf": round(search / timing.audio, 5),
            "device": str(device),
        }
        files[f"rtf-{name}.json"] = json.dumps(rtf, indent=2) + "\n"
        if left_out:
            files[f"skipped-{name}.txt"] = "".join(f"{line}\n" for line in left_out)
        markers = [f"cer-summary-{name}.txt", f"wer-summary-{name}.txt"]
        files[markers[0]] = format_summary(cers, "CER", full_record)
        files[markers[1]] = format_summary(wers, "WER", full_record)
        write_group(out_dir, files, markers, stale=_previous_files(out_dir, name))
        logging.info(
            "[%s %s] best %s; RTF %.4f (model %.1f s + search %.1f s for %.1f s of audio)",
            d.name,
            name,
            min(wers.items(), key=lambda kv: kv[1]),
            rtf["rtf"],
            timing.model,
            search,
            timing.audio,
        )
        summary[d.name] = wers
    return summary
