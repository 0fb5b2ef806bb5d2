"""Scoring in icefall's formats: ``recogs-``, ``errs-``, ``wer-summary-`` / ``cer-summary-``.

Alignments are kaldialign's. The files are the ones icefall's ``store_transcripts``,
``write_error_stats`` and the decode scripts' summaries write, so existing tooling reads them:

- ``recogs-<test>-<key>.txt``: ``<cut_id>:\\tref=[...]`` / ``<cut_id>:\\thyp=[...]``;
- ``errs-<test>-<key>.txt``: ``%WER = x.xx``, the error counts, per-utterance alignment,
  substitutions, deletions, insertions and per-word statistics;
- ``wer-summary-<test>.txt``: ``settings<TAB>WER`` then ``<key><TAB><WER>``, best first.

CER is computed on the same pairs with words joined and split into characters (spaces dropped),
as icefall's ``compute_CER``. A summary may end with ``# <name>: <value>`` lines recording where
its numbers come from (checkpoint, update, test set, utterances left out); readers skip them.

The files of one test set and method are written as a group (:func:`write_group`): all into a
temporary folder, the old summaries removed, the others renamed into place, the summaries last.
A summary therefore always describes the ``recogs-``/``errs-`` files next to it, and an
interrupted write leaves the set without a summary (undecoded) rather than mixed.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import kaldialign

from hourglass_w2v2.fileio import atomic_write_text, fsync_directory

ERR = "*"

Result = tuple[str, list[str], list[str]]  # (cut_id, ref words, hyp words)


@dataclass
class ErrorStats:
    """Totals of one scoring run (words or characters)."""

    ins: int
    dels: int
    subs: int
    ref_len: int
    corr: int

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def error_rate(self) -> float:
        """Error rate in percent."""
        return 100.0 * self.errors / self.ref_len


def to_chars(results: Sequence[Result]) -> list[Result]:
    """The same results split into characters (spaces dropped), for CER."""
    return [(cut_id, list("".join(ref)), list("".join(hyp))) for cut_id, ref, hyp in results]


def error_counts(refs: list[str], hyps: list[str]) -> dict[str, int]:
    """Word and character edit distances summed over ``(ref, hyp)`` string pairs (kaldialign):
    the counts behind a WER/CER when no ``errs-`` text is wanted (validation during training)."""
    out = {"word_errors": 0, "words": 0, "char_errors": 0, "chars": 0}
    for ref, hyp in zip(refs, hyps, strict=True):
        out["word_errors"] += kaldialign.edit_distance(ref.split(), hyp.split())["total"]
        out["words"] += len(ref.split())
        ref_c, hyp_c = list(ref.replace(" ", "")), list(hyp.replace(" ", ""))
        out["char_errors"] += kaldialign.edit_distance(ref_c, hyp_c)["total"]
        out["chars"] += len(ref_c)
    return out


def word_error_rate(refs: list[list[str]], hyps: list[list[str]]) -> float:
    """WER (%) of the word lists ``hyps`` against ``refs`` (kaldialign edit distances): for
    comparisons that need neither character counts nor ``errs-`` text."""
    errors = sum(kaldialign.edit_distance(r, h)["total"] for r, h in zip(refs, hyps, strict=True))
    return 100.0 * errors / max(sum(len(r) for r in refs), 1)


def check_references(results: Sequence[Result], test_set: str) -> None:
    """Warn about utterances with an empty reference; raise if every reference is empty.

    An empty reference is kept (its hypothesis words count as insertions, as in Kaldi's
    ``compute-wer``), but it usually means a broken transcript, so it is named in the log.
    """
    empty = [cut_id for cut_id, ref, _ in results if not ref]
    if empty:
        logging.warning(
            "%s: %d utterance(s) have an empty reference (e.g. %s); their hypotheses count as "
            "insertions",
            test_set,
            len(empty),
            ", ".join(empty[:3]),
        )
    if not results or len(empty) == len(results):
        raise ValueError(
            f"test set {test_set!r} has no reference words ({len(results)} utterances): "
            "cannot compute an error rate"
        )


def format_recogs(results: Sequence[Result]) -> str:
    """icefall's ``store_transcripts`` text, sorted by cut id."""
    lines = []
    for cut_id, ref, hyp in sorted(results):
        lines.append(f"{cut_id}:\tref={ref}")
        lines.append(f"{cut_id}:\thyp={hyp}")
    return "\n".join(lines) + "\n"


def _merge_successive_errors(ali: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join runs of adjacent errors into one ``(a b->c d)`` item, as icefall prints them."""
    merged: list[tuple[list[str], list[str]]] = []
    prev_error = False
    for ref, hyp in ali:
        error = ref != hyp
        if error and prev_error:
            merged[-1][0].append(ref)
            merged[-1][1].append(hyp)
        else:
            merged.append(([ref], [hyp]))
        prev_error = error
    out = []
    for refs, hyps in merged:
        r = " ".join(w for w in refs if w != ERR) or ERR
        h = " ".join(w for w in hyps if w != ERR) or ERR
        out.append((r, h))
    return out


def error_stats(results: Sequence[Result], test_set: str = "") -> tuple[ErrorStats, str]:
    """Align every pair with kaldialign and return the totals and icefall's ``errs-`` text."""
    subs: dict[tuple[str, str], int] = defaultdict(int)
    ins: dict[str, int] = defaultdict(int)
    dels: dict[str, int] = defaultdict(int)
    # word -> [corr, ref_sub, hyp_sub, ins, del]
    words: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    num_corr = 0
    per_utt = []
    for cut_id, ref, hyp in sorted(results):
        ali = kaldialign.align(ref, hyp, ERR)
        for ref_word, hyp_word in ali:
            if ref_word == ERR:
                ins[hyp_word] += 1
                words[hyp_word][3] += 1
            elif hyp_word == ERR:
                dels[ref_word] += 1
                words[ref_word][4] += 1
            elif ref_word != hyp_word:
                subs[(ref_word, hyp_word)] += 1
                words[ref_word][1] += 1
                words[hyp_word][2] += 1
            else:
                words[ref_word][0] += 1
                num_corr += 1
        items = _merge_successive_errors(ali)
        per_utt.append(f"{cut_id}:\t" + " ".join(r if r == h else f"({r}->{h})" for r, h in items))
    stats = ErrorStats(
        ins=sum(ins.values()),
        dels=sum(dels.values()),
        subs=sum(subs.values()),
        ref_len=sum(len(ref) for _, ref, _ in results),
        corr=num_corr,
    )
    if stats.ref_len == 0:
        raise ValueError(f"test set {test_set!r} has no reference words")
    lines = [
        f"%WER = {stats.error_rate:.2f}",
        f"Errors: {stats.ins} insertions, {stats.dels} deletions, {stats.subs} substitutions, "
        f"over {stats.ref_len} reference words ({stats.corr} correct)",
        "Search below for sections starting with PER-UTT DETAILS:, SUBSTITUTIONS:, DELETIONS:, "
        "INSERTIONS:, PER-WORD STATS:",
        "",
        "PER-UTT DETAILS: corr or (ref->hyp)  ",
        *per_utt,
        "",
        "SUBSTITUTIONS: count ref -> hyp",
        *(
            f"{n}   {r} -> {h}"
            for n, (r, h) in sorted(((v, k) for k, v in subs.items()), reverse=True)
        ),
        "",
        "DELETIONS: count ref",
        *(f"{n}   {w}" for n, w in sorted(((v, k) for k, v in dels.items()), reverse=True)),
        "",
        "INSERTIONS: count hyp",
        *(f"{n}   {w}" for n, w in sorted(((v, k) for k, v in ins.items()), reverse=True)),
        "",
        "PER-WORD STATS: word  corr tot_errs count_in_ref count_in_hyp",
    ]
    for _, word, (corr, ref_sub, hyp_sub, n_ins, n_del) in sorted(
        ((sum(v[1:]), k, v) for k, v in words.items()), reverse=True
    ):
        lines.append(
            f"{word}   {corr} {ref_sub + hyp_sub + n_ins + n_del} {corr + ref_sub + n_del} "
            f"{corr + hyp_sub + n_ins}"
        )
    return stats, "\n".join(lines) + "\n"


def score_results(
    test_set: str, key: str, results: Sequence[Result]
) -> tuple[ErrorStats, ErrorStats, dict[str, str]]:
    """Score one key: WER, CER and the text of its ``recogs-``, ``errs-``, ``errs-cer-`` files.

    The files are returned as ``{file name: text}`` for :func:`write_group`; nothing is written.
    """
    check_references(results, test_set)
    wer, wer_text = error_stats(results, test_set)
    cer, cer_text = error_stats(to_chars(results), test_set)
    files = {
        f"recogs-{test_set}-{key}.txt": format_recogs(results),
        f"errs-{test_set}-{key}.txt": wer_text,
        f"errs-cer-{test_set}-{key}.txt": cer_text.replace("%WER", "%CER", 1),
    }
    logging.info(
        "[%s-%s] %%WER %.2f%% [%d / %d, %d ins, %d del, %d sub]  %%CER %.2f%%",
        test_set,
        key,
        wer.error_rate,
        wer.errors,
        wer.ref_len,
        wer.ins,
        wer.dels,
        wer.subs,
        cer.error_rate,
    )
    return wer, cer, files


def write_group(
    out_dir: str | Path, files: dict[str, str], markers: Sequence[str], stale: Sequence[str] = ()
) -> None:
    """Write ``files`` into ``out_dir`` so that readers see all of them or none.

    ``markers`` (names among ``files``, e.g. the summaries) say the group is complete: the old
    ones are removed before anything is replaced and the new ones renamed in last, in the given
    order. ``stale`` names files of the previous group that the new one does not replace (an
    LM scale no longer swept); they are removed with the old markers.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".partial-{markers[-1]}"
    if tmp.exists():  # left by a run killed while writing; its files were never in place
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        # each staged file is synced before any is renamed in, so a full disk replaces nothing
        for name, text in files.items():
            atomic_write_text(tmp / name, text)
        for name in [*markers, *(n for n in stale if n not in files)]:
            (out_dir / name).unlink(missing_ok=True)
        for name in [*(n for n in files if n not in markers), *markers]:
            os.replace(tmp / name, out_dir / name)
        fsync_directory(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def format_summary(
    rates: dict[str, float], metric: str = "WER", record: dict[str, object] | None = None
) -> str:
    """``settings<TAB>WER`` followed by one ``key<TAB>rate`` line per setting, best first.

    ``record`` items follow as ``# <name>: <value>`` lines (which checkpoint, which test set).
    """
    lines = [f"settings\t{metric}"]
    lines += [f"{key}\t{rate:.2f}" for key, rate in sorted(rates.items(), key=lambda kv: kv[1])]
    lines += [f"# {name}: {value}" for name, value in (record or {}).items()]
    return "\n".join(lines) + "\n"


def _summary_lines(path: str | Path) -> tuple[str, list[tuple[int, str]]]:
    """The metric named in a summary's header and its other non-empty ``(line number, line)``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("settings\t"):
        raise ValueError(f"{path}: not a summary file (first line must be 'settings<TAB>WER')")
    metric = lines[0].split("\t", 1)[1].strip() or "rate"
    return metric, [(n, line) for n, line in enumerate(lines[1:], 2) if line.strip()]


def read_summary(path: str | Path) -> dict[str, float]:
    """Parse a ``wer-summary-`` / ``cer-summary-`` file back into ``{key: rate}`` (file order).

    Every rate must be a finite number >= 0 and every key appear once; anything else is a
    ``ValueError`` naming the file and line, since a results table must not show it.
    ``# name: value`` record lines are skipped (see :func:`read_summary_record`).
    """
    metric, lines = _summary_lines(path)
    rates: dict[str, float] = {}
    for lineno, line in lines:
        if line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            rate = float(parts[1])
        except (IndexError, ValueError):
            raise ValueError(
                f"{path}:{lineno}: expected '<key><TAB><rate>', got {line!r}"
            ) from None
        if not math.isfinite(rate):
            raise ValueError(
                f"{path}:{lineno}: {metric} {parts[1].strip()!r} is not a rate "
                "(expected a number >= 0); decode this test set again"
            )
        if rate < 0:
            raise ValueError(
                f"{path}:{lineno}: {metric} {parts[1].strip()!r} is negative; an error rate is "
                ">= 0, so the file was not written by the decoder: decode this test set again"
            )
        if parts[0] in rates:
            raise ValueError(f"{path}:{lineno}: key {parts[0]!r} appears twice")
        rates[parts[0]] = rate
    if not rates:
        raise ValueError(f"{path}: no '<key><TAB><rate>' line after the header")
    return rates


def read_summary_record(path: str | Path) -> dict[str, str]:
    """The ``# <name>: <value>`` lines of a summary as ``{name: value}`` (empty for old files)."""
    _, lines = _summary_lines(path)
    record = {}
    for _, line in lines:
        if line.startswith("#") and ":" in line:
            name, value = line[1:].split(":", 1)
            record[name.strip()] = value.strip()
    return record
