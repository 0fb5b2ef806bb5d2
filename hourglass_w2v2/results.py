"""The results table across experiment directories (run.sh stage 4).

Reads, for every experiment directory, ``decode/<method>/wer-summary-<test>.txt`` and
``cer-summary-<test>.txt`` (icefall's summaries), ``decode/<method>/rtf-<test>.json`` and
``train_info.json``, and builds one table: a row per experiment x method x key, a WER and a CER
column per test set, then parameters, pretraining updates, fine-tuning updates and hours, and
the decoding real-time factor (audio-weighted over the test sets). Only complete files are read:
the decoder writes a test set's files as a group with the summaries last, and temporary files
start with a dot.

The fine-tuning updates of a row are those of the checkpoint its summaries record (``# update:``
lines), not the experiment's latest; test sets decoded with different checkpoints go on
separate rows. A file that cannot be read (truncated JSON, a summary with a NaN or negative
rate) is named in ``problems`` and its numbers are left out, never guessed.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from hourglass_w2v2.scoring import read_summary, read_summary_record

KNOWN_TEST_ORDER = ("dev-clean", "dev-other", "test-clean", "test-other")
_SUMMARY_RE = re.compile(r"^(wer|cer)-summary-(.+)\.txt$")
_CKPT_RE = re.compile(r"ckpt-(\d+)\.pt$")


@dataclass
class Row:
    """One line of the table."""

    experiment: str
    method: str
    key: str
    wer: dict[str, float] = field(default_factory=dict)
    cer: dict[str, float] = field(default_factory=dict)
    num_params: int | None = None
    pretrain_updates: int | str | None = None
    updates: int | None = None
    train_hours: float | None = None
    rtf: float | None = None
    checkpoint: str | None = None


def read_json(path: Path, problems: list[str], what: str) -> dict | None:
    """A JSON object file, or None with ``"<file>: <what is wrong>"`` added to ``problems``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        problems.append(
            f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}; truncated?); "
            f"{what} left out"
        )
        return None
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: cannot be read ({e}); {what} left out")
        return None
    if not isinstance(data, dict):
        problems.append(
            f"{path}: expected a JSON object, got {type(data).__name__}; {what} left out"
        )
        return None
    return data


def _update(record: dict[str, str]) -> int | None:
    """The checkpoint update a summary records, if it records one."""
    try:
        return int(record["update"])
    except (KeyError, ValueError):
        return None


def pretrain_updates(
    init: str | None, exp_dir: Path, problems: list[str] | None = None
) -> int | str | None:
    """Pretraining updates behind a fine-tuning run, from its ``init`` in ``train_info.json``.

    ``scratch`` -> 0; ``.../ckpt-<N>.pt`` -> N; another checkpoint of one of our experiment dirs
    (``best.pt``, ``averaged.pt``) -> that dir's ``train_info.json`` updates; anything else
    (an imported fairseq/HF model) -> its file name. An unreadable ``train_info.json`` gives
    None and a line in ``problems``.
    """
    if init is None:
        return None
    if init == "scratch":
        return 0
    m = _CKPT_RE.search(init)
    if m:
        return int(m.group(1))
    path = Path(init)
    for base in (Path.cwd(), exp_dir.parent.parent):
        info = (base / path).parent.parent / "train_info.json"
        if info.is_file():
            data = read_json(info, [] if problems is None else problems, "pretraining updates")
            return None if data is None else data.get("updates")
    return path.name


def _method_rtf(method_dir: Path, problems: list[str]) -> float | None:
    """Audio-weighted RTF of a method over its ``rtf-*.json``; None if any is unreadable."""
    audio, seconds = 0.0, 0.0
    for rtf_file in sorted(method_dir.glob("rtf-*.json")):
        r = read_json(rtf_file, problems, f"decode RTF of {method_dir.name}")
        if r is None:
            return None
        try:
            audio += float(r["audio_seconds"])
            seconds += float(r["rtf"]) * float(r["audio_seconds"])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(
                f"{rtf_file}: no numeric 'audio_seconds' and 'rtf' ({type(e).__name__}: {e}); "
                f"decode RTF of {method_dir.name} left out"
            )
            return None
    return seconds / audio if audio else None


def read_experiment(exp_dir: str | Path, problems: list[str] | None = None) -> list[Row]:
    """All rows of one experiment directory (empty when it has no decode summaries).

    A file that cannot be read is left out and described in ``problems``
    (``"<file>[:line]: <what is wrong>"``), with a logged warning.
    """
    exp_dir = Path(exp_dir)
    decode_dir = exp_dir / "decode"
    if not decode_dir.is_dir():
        return []
    found: list[str] = []
    info_path = exp_dir / "train_info.json"
    info = (read_json(info_path, found, "its training fields") if info_path.is_file() else {}) or {}
    rows: dict[tuple[str, str, str | None], Row] = {}
    for method_dir in sorted(p for p in decode_dir.iterdir() if p.is_dir()):
        rtf = _method_rtf(method_dir, found)
        checkpoints = set()
        for summary in sorted(method_dir.iterdir()):
            m = _SUMMARY_RE.match(summary.name)
            if not m:
                continue
            metric, test_set = m.groups()
            try:
                rates, record = read_summary(summary), read_summary_record(summary)
            except (OSError, UnicodeDecodeError, ValueError) as e:
                found.append(f"{e}; left out" if str(summary) in str(e) else f"{summary}: {e}")
                continue
            checkpoint = record.get("checkpoint")
            checkpoints.add(checkpoint)
            update = _update(record)
            for key, rate in rates.items():
                row = rows.setdefault(
                    (method_dir.name, key, checkpoint),
                    Row(
                        experiment=exp_dir.name,
                        method=method_dir.name,
                        key=key,
                        num_params=info.get("num_params"),
                        pretrain_updates=pretrain_updates(info.get("init"), exp_dir, found),
                        updates=update if update is not None else info.get("updates"),
                        train_hours=info.get("train_hours"),
                        rtf=rtf,
                        checkpoint=checkpoint,
                    ),
                )
                getattr(row, metric)[test_set] = rate
        if len(checkpoints) > 1:
            logging.warning(
                "%s: test sets were decoded with different checkpoints (%s); they are shown on "
                "separate rows",
                method_dir,
                ", ".join(sorted(str(c) for c in checkpoints)),
            )
    for problem in dict.fromkeys(found):
        logging.warning("left out of the table: %s", problem)
    if problems is not None:
        problems += list(dict.fromkeys(found))
    return list(rows.values())


def collect(
    exp_dirs: list[str | Path], problems: list[str] | None = None
) -> tuple[list[Row], list[str]]:
    """Rows of every experiment dir and the test sets they cover (recipe order first).

    Files that cannot be read are described in ``problems`` (see :func:`read_experiment`).
    """
    rows: list[Row] = []
    for d in exp_dirs:
        found = read_experiment(d, problems)
        if not found:
            logging.info("%s: no decode results, skipped", d)
        rows += found
    tests = {t for r in rows for t in (*r.wer, *r.cer)}
    order = [t for t in KNOWN_TEST_ORDER if t in tests] + sorted(tests - set(KNOWN_TEST_ORDER))
    return rows, order


def _fmt(value: float | int | str | None, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def table(rows: list[Row], test_sets: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the table (strings, ``-`` where a value is missing)."""
    header = ["experiment", "method", "key"]
    for t in test_sets:
        header += [f"{t} WER", f"{t} CER"]
    header += ["params (M)", "pretrain updates", "ft updates", "train hours", "decode RTF"]
    cells = []
    for r in rows:
        line = [r.experiment, r.method, r.key]
        for t in test_sets:
            line += [_fmt(r.wer.get(t), ".2f"), _fmt(r.cer.get(t), ".2f")]
        line += [
            _fmt(r.num_params / 1e6 if r.num_params is not None else None, ".2f"),
            _fmt(r.pretrain_updates),
            _fmt(r.updates),
            _fmt(r.train_hours, ".2f"),
            _fmt(r.rtf, ".4f"),
        ]
        cells.append(line)
    return header, cells


def to_markdown(header: list[str], cells: list[list[str]]) -> str:
    """A GitHub-markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], cells: list[list[str]]) -> str:
    """The same table as CSV."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(cells)
    return buf.getvalue()


def best_rates(rows: list[Row]) -> dict[tuple[str, str, str, str], tuple[float, str]]:
    """``{(experiment, method, test set, "wer"|"cer"): (lowest rate, its key)}`` over the keys
    (the LM-scale sweep), as icefall reports a method."""
    best: dict[tuple[str, str, str, str], tuple[float, str]] = {}
    for r in rows:
        for metric in ("wer", "cer"):
            for t, v in getattr(r, metric).items():
                k = (r.experiment, r.method, t, metric)
                if k not in best or v < best[k][0]:
                    best[k] = (v, r.key)
    return best


def compare_to_baseline(rows: list[Row], baseline: str, test_sets: list[str]) -> list[str]:
    """Markdown list items: each experiment's best key against the baseline's, relative change.

    For every other experiment, decoding method both have, test set and metric (WER, CER), the
    lowest rate over the keys of each (the LM-scale sweep, as icefall reports it) and the
    relative change ``(ours - baseline) / baseline``.
    """
    best = best_rates(rows)
    experiments = list(dict.fromkeys(r.experiment for r in rows))
    if baseline not in experiments:
        raise ValueError(f"baseline {baseline!r} is not among the experiments {experiments}")
    methods = sorted({r.method for r in rows})
    others = [e for e in experiments if e != baseline]
    lines = []
    for exp, method, t, metric in itertools.product(others, methods, test_sets, ("wer", "cer")):
        ours, base = best.get((exp, method, t, metric)), best.get((baseline, method, t, metric))
        if ours is None or base is None:
            continue
        rel = 100.0 * (ours[0] - base[0]) / base[0] if base[0] else float("nan")
        lines.append(
            f"- {exp} vs {baseline}, {method}, {t} {metric.upper()}: "
            f"{ours[0]:.2f} ({ours[1]}) vs {base[0]:.2f} ({base[1]}), {rel:+.1f}% relative"
        )
    return lines


def verdict(
    rows: list[Row],
    experiment: str,
    baseline: str,
    test_set: str = "test-clean",
    wer_method: str = "1best-HLG",
    cer_method: str = "ctc-greedy",
) -> str:
    """One plain sentence: does ``experiment`` beat ``baseline`` on ``test_set``?

    Compares the best key's WER of ``wer_method`` and CER of ``cer_method`` (the same numbers
    as :func:`compare_to_baseline`): "paid off" when both are lower, "did not pay off" when
    neither is, "mixed" otherwise.
    """

    rates = best_rates(rows)

    def best(exp: str, method: str, metric: str) -> float:
        if (exp, method, test_set, metric) not in rates:
            raise ValueError(f"no {method} {metric.upper()} of {exp} on {test_set}")
        return rates[exp, method, test_set, metric][0]

    wer, base_wer = best(experiment, wer_method, "wer"), best(baseline, wer_method, "wer")
    cer, base_cer = best(experiment, cer_method, "cer"), best(baseline, cer_method, "cer")

    def change(ours: float, base: float, what: str) -> str:
        rel = 100.0 * (ours - base) / base if base else 0.0
        if round(rel, 1) == 0:
            return f"as many {what} ({ours:.2f} vs {base:.2f})"
        return f"{abs(rel):.1f}% {'fewer' if rel < 0 else 'more'} {what} ({ours:.2f} vs {base:.2f})"

    better = (wer < base_wer) + (cer < base_cer)
    outcome = {2: "Pretraining paid off", 1: "Mixed result", 0: "Pretraining did not pay off"}
    return (
        f"{outcome[better]}: on {test_set}, {experiment} makes "
        f"{change(wer, base_wer, f'word errors with {wer_method}')} and "
        f"{change(cer, base_cer, f'character errors with {cer_method}')} than {baseline}."
    )
