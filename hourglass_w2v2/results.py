"""The results table across experiment directories (run.sh stage 4).

Reads, for every experiment directory, ``decode/<method>/wer-summary-<test>.txt`` and
``cer-summary-<test>.txt`` (icefall's summaries), ``decode/<method>/rtf-<test>.json`` and
``train_info.json``, and builds one table: a row per experiment x method x key, a WER and a CER
column per test set, then parameters, pretraining updates, fine-tuning updates and hours, and
the decoding real-time factor (audio-weighted over the test sets). Only complete files are read:
the decoder writes them atomically, and temporary files start with a dot.
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

from hourglass_w2v2.scoring import read_summary

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


def pretrain_updates(init: str | None, exp_dir: Path) -> int | str | None:
    """Pretraining updates behind a fine-tuning run, from its ``init`` in ``train_info.json``.

    ``scratch`` -> 0; ``.../ckpt-<N>.pt`` -> N; another checkpoint of one of our experiment dirs
    (``best.pt``, ``averaged.pt``) -> that dir's ``train_info.json`` updates; anything else
    (an imported fairseq/HF model) -> its file name.
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
            return json.loads(info.read_text()).get("updates")
    return path.name


def read_experiment(exp_dir: str | Path) -> list[Row]:
    """All rows of one experiment directory (empty when it has no decode summaries)."""
    exp_dir = Path(exp_dir)
    info_path = exp_dir / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    rows: dict[tuple[str, str], Row] = {}
    decode_dir = exp_dir / "decode"
    if not decode_dir.is_dir():
        return []
    for method_dir in sorted(p for p in decode_dir.iterdir() if p.is_dir()):
        audio, seconds = 0.0, 0.0
        for rtf_file in sorted(method_dir.glob("rtf-*.json")):
            r = json.loads(rtf_file.read_text())
            audio += r["audio_seconds"]
            seconds += r["rtf"] * r["audio_seconds"]
        for summary in sorted(method_dir.iterdir()):
            m = _SUMMARY_RE.match(summary.name)
            if not m:
                continue
            metric, test_set = m.groups()
            for key, rate in read_summary(summary).items():
                row = rows.setdefault(
                    (method_dir.name, key),
                    Row(
                        experiment=exp_dir.name,
                        method=method_dir.name,
                        key=key,
                        num_params=info.get("num_params"),
                        pretrain_updates=pretrain_updates(info.get("init"), exp_dir),
                        updates=info.get("updates"),
                        train_hours=info.get("train_hours"),
                        rtf=seconds / audio if audio else None,
                    ),
                )
                getattr(row, metric)[test_set] = rate
    return list(rows.values())


def collect(exp_dirs: list[str | Path]) -> tuple[list[Row], list[str]]:
    """Rows of every experiment dir and the test sets they cover (recipe order first)."""
    rows: list[Row] = []
    for d in exp_dirs:
        found = read_experiment(d)
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


def compare_to_baseline(rows: list[Row], baseline: str, test_sets: list[str]) -> list[str]:
    """Markdown list items: each experiment's best key against the baseline's, relative change.

    For every other experiment, decoding method both have, test set and metric (WER, CER), the
    lowest rate over the keys of each (the LM-scale sweep, as icefall reports it) and the
    relative change ``(ours - baseline) / baseline``.
    """
    best: dict[tuple[str, str, str, str], tuple[float, str]] = {}
    for r in rows:
        for metric in ("wer", "cer"):
            for t, v in getattr(r, metric).items():
                k = (r.experiment, r.method, t, metric)
                if k not in best or v < best[k][0]:
                    best[k] = (v, r.key)
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
