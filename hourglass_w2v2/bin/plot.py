"""Draw training curves and a results chart of experiment directories as PNGs (matplotlib).

    python -m hourglass_w2v2.bin.plot exp/A exp/B ... [--out DIR] [--prefix NAME_]
        [--metrics loss,accuracy,...] [--strict]

Writes into ``--out`` (default: the current directory):

- ``<prefix>train_curves.png``: one panel per metric of ``log/train_metrics.jsonl`` (loss,
  accuracy, code perplexity, lr, grad norm, blank share, ...), one line per experiment;
- ``<prefix>valid_curves.png``: the same for the validation metrics (the ``valid/*`` scalars the
  trainer writes to ``tensorboard/``);
- ``<prefix>results.png``: WER and CER per test set, one bar per experiment and decoding method
  (its best key, as icefall reports a sweep), from ``decode/<method>/{wer,cer}-summary-*.txt``.

A metric an experiment did not log is left out of its panels; a picture with nothing in it is
not written. An experiment directory with nothing to plot is named in a warning. A malformed
file (a line of ``train_metrics.jsonl`` that is not JSON, a summary with a bad rate) is named
with what is wrong and left out; ``--strict`` makes that an error (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

from matplotlib.figure import Figure

from hourglass_w2v2.results import KNOWN_TEST_ORDER, Row, read_experiment

#: per-update bookkeeping in ``train_metrics.jsonl`` that is not a training curve
NOT_CURVES = frozenset(
    {"update", "sample_size", "audio_seconds", "nonfinite_skipped", "corrupt_cuts_skipped",
     "peak_memory_gb"}
)
#: panels in this order first (pretraining, then fine-tuning), then any other metric by name
METRIC_ORDER = (
    "loss",
    "contrastive_loss",
    "accuracy",
    "code_perplexity",
    "prob_perplexity",
    "diversity_loss",
    "feature_penalty",
    "temperature",
    "target_similarity",
    "num_masked",
    "ctc_loss",
    "wer",
    "cer",
    "blank_share",
    "only_blanks",
    "lr",
    "grad_norm",
)
#: a series: (updates, values), both in update order
Series = tuple[list[int], list[float]]
#: what a curves picture holds: metric -> experiment -> series
Curves = dict[str, dict[str, Series]]


def read_train_metrics(exp_dir: str | Path, problems: list[str] | None = None) -> dict[str, Series]:
    """Per-metric series of ``<exp_dir>/log/train_metrics.jsonl`` (empty when there is none).

    Each line is one logged update, ``{"update": N, "<metric>": value, ...}``. Lines that are not
    a JSON object with an integer ``update`` (a line cut by a kill, a hand-edited file) are left
    out and described, once per file with the first bad line, in ``problems``; non-numeric and
    non-finite values are left out of their series.
    """
    path = Path(exp_dir) / "log" / "train_metrics.jsonl"
    if not path.is_file():
        return {}
    series: dict[str, Series] = {}
    bad: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                update = int(record["update"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                bad.append(f"{path}:{lineno}: not a metrics line ({type(e).__name__}: {e})")
                continue
            for name, value in record.items():
                if name in NOT_CURVES or isinstance(value, bool):
                    continue
                if isinstance(value, int | float) and math.isfinite(value):
                    xs, ys = series.setdefault(name, ([], []))
                    xs.append(update)
                    ys.append(float(value))
    if bad and problems is not None:
        more = f" (and {len(bad) - 1} more bad lines)" if len(bad) > 1 else ""
        problems.append(f"{bad[0]}{more}; left out")
    return series


def read_valid_metrics(exp_dir: str | Path, problems: list[str] | None = None) -> dict[str, Series]:
    """Per-metric series of the ``valid/<metric>`` scalars in ``<exp_dir>/tensorboard/``.

    Uses tensorboard's own event reader (which also drops the steps a resumed run wrote again).
    Empty when the directory holds no event files; an event file that cannot be read is
    described in ``problems``.
    """
    tb_dir = Path(exp_dir) / "tensorboard"
    if not tb_dir.is_dir() or not any(tb_dir.glob("events.out.tfevents.*")):
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    try:
        acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
        acc.Reload()
        tags = [t for t in acc.Tags().get("scalars", []) if t.startswith("valid/")]
        series: dict[str, Series] = {}
        for tag in tags:
            events = sorted(acc.Scalars(tag), key=lambda e: e.step)
            series[tag.removeprefix("valid/")] = (
                [int(e.step) for e in events],
                [float(e.value) for e in events],
            )
    except Exception as e:  # tensorboard raises its own types for corrupt records
        if problems is not None:
            problems.append(f"{tb_dir}: cannot read the event files ({type(e).__name__}: {e})")
        return {}
    return series


def _metric_order(names: set[str]) -> list[str]:
    known = [m for m in METRIC_ORDER if m in names]
    return known + sorted(names - set(METRIC_ORDER))


def plot_curves(curves: Curves, out: str | Path, title: str) -> Curves:
    """Draw ``curves`` (metric -> experiment -> series) as a grid of panels into the PNG ``out``.

    One panel per metric (in :data:`METRIC_ORDER`, then by name), one line per experiment in a
    colour kept across panels; ``lr`` is drawn on a log scale when all its values are positive.
    Returns the data of the lines as drawn, read back from the figure, in the same shape.
    """
    metrics = _metric_order({m for m, by_exp in curves.items() if by_exp})
    experiments = list(dict.fromkeys(e for m in metrics for e in curves[m]))
    colours = {e: f"C{i % 10}" for i, e in enumerate(experiments)}
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(max(4.8, 3.6 * cols), 2.6 * rows + 0.8), dpi=80, layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    drawn: Curves = {}
    for ax, metric in zip(axes, metrics, strict=False):
        for exp, (xs, ys) in curves[metric].items():
            # markers keep a series of a few validations (or one) visible
            marker = "o" if len(xs) <= 30 else None
            (line,) = ax.plot(xs, ys, color=colours[exp], label=exp, linewidth=1.2,
                              marker=marker, markersize=3)
            x, y = line.get_data()
            drawn.setdefault(metric, {})[exp] = ([int(v) for v in x], [float(v) for v in y])
        if metric == "lr" and all(v > 0 for _, ys in curves[metric].values() for v in ys):
            ax.set_yscale("log")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("update", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    handles = [axes[0].plot([], [], color=colours[e], label=e)[0] for e in experiments]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(3, len(experiments)),
               fontsize=8)
    fig.savefig(out, format="png")
    return drawn


def best_rates(rows: list[Row]) -> dict[str, dict[str, dict[str, float]]]:
    """Lowest rate over the keys of each experiment and method, per test set.

    Returns ``{"WER"|"CER": {"<experiment> <method>": {test_set: rate}}}``, the numbers a
    results chart shows (a method's LM-scale sweep reduced to its best setting).
    """
    best: dict[str, dict[str, dict[str, float]]] = {"WER": {}, "CER": {}}
    for r in rows:
        label = f"{r.experiment} {r.method}"
        for metric, rates in (("WER", r.wer), ("CER", r.cer)):
            for test_set, rate in rates.items():
                cell = best[metric].setdefault(label, {})
                cell[test_set] = min(rate, cell.get(test_set, math.inf))
    return {m: by_label for m, by_label in best.items() if by_label}


def plot_results(
    rows: list[Row], test_sets: list[str], out: str | Path
) -> dict[str, dict[str, dict[str, float]]]:
    """Draw WER and CER per test set, one bar per experiment and method, into the PNG ``out``.

    Each bar is the best key of that experiment and method (:func:`best_rates`), labelled with
    its value. Returns the heights as drawn, read back from the bars, in ``best_rates``' shape.
    """
    rates = best_rates(rows)
    fig = Figure(figsize=(max(5.0, 1.6 * len(test_sets) + 2.5), 3.4 * len(rates)), dpi=80,
                 layout="constrained")
    axes = fig.subplots(len(rates), 1, squeeze=False).ravel()
    drawn: dict[str, dict[str, dict[str, float]]] = {}
    for ax, (metric, by_label) in zip(axes, rates.items(), strict=True):
        labels = list(by_label)
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            tests = [t for t in test_sets if t in by_label[label]]
            xs = [test_sets.index(t) + (i - (len(labels) - 1) / 2) * width for t in tests]
            bars = ax.bar(xs, [by_label[label][t] for t in tests], width, label=label,
                          color=f"C{i % 10}")
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
            drawn.setdefault(metric, {})[label] = {
                t: float(b.get_height()) for t, b in zip(tests, bars, strict=True)
            }
        ax.set_xticks(range(len(test_sets)), test_sets, fontsize=8)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, max(v for d in by_label.values() for v in d.values()) * 1.15 or 1)
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    # long labels (experiment + method) would run off the figure side by side
    ncols = 1 if max(len(n) for n in names) > 24 else min(3, len(names))
    fig.legend(handles, names, loc="outside lower center", ncols=ncols, fontsize=8)
    fig.savefig(out, format="png")
    return drawn


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("exp_dirs", nargs="+", type=Path, help="experiment directories")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs (made)")
    p.add_argument("--prefix", default="", help="start of each PNG's name, e.g. demo_")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metrics to draw (default: every one logged), e.g. loss,accuracy,lr",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit status 1) when a file cannot be read, instead of leaving it out",
    )
    return p


def _label(exp_dirs: list[Path]) -> dict[Path, str]:
    """A line label per experiment: its folder name, or the path when two names clash."""
    names = [d.name for d in exp_dirs]
    return {d: d.name if names.count(d.name) == 1 else str(d) for d in exp_dirs}


def main(argv: list[str] | None = None) -> dict[Path, dict]:
    """Write the training-curve and results PNGs of the experiment directories given.

    Returns, for each PNG written, the data drawn in it (see :func:`plot_curves` and
    :func:`plot_results`).
    """
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    missing = [str(d) for d in args.exp_dirs if not d.is_dir()]
    if missing:
        raise SystemExit(f"plot: no such experiment directory: {', '.join(missing)}")
    wanted = None if args.metrics is None else {m.strip() for m in args.metrics.split(",")}
    labels = _label(args.exp_dirs)
    problems: list[str] = []
    train: Curves = {}
    valid: Curves = {}
    rows: list[Row] = []
    for d in args.exp_dirs:
        found = False
        for curves, reader in ((train, read_train_metrics), (valid, read_valid_metrics)):
            for metric, series in reader(d, problems).items():
                if wanted is None or metric in wanted:
                    curves.setdefault(metric, {})[labels[d]] = series
                    found = True
        exp_rows = read_experiment(d, problems)
        for r in exp_rows:
            r.experiment = labels[d]
        rows += exp_rows
        if not found and not exp_rows:
            logging.warning(
                "%s: nothing to plot (no log/train_metrics.jsonl, no valid/* scalars in "
                "tensorboard/, no decode/*/wer-summary-*.txt)%s",
                d,
                f" among --metrics {args.metrics}" if wanted is not None else "",
            )
    for problem in problems:
        logging.warning("left out: %s", problem)
    if problems and args.strict:
        raise SystemExit("plot: unreadable files (--strict):\n  " + "\n  ".join(problems))
    args.out.mkdir(parents=True, exist_ok=True)
    written: dict[Path, dict] = {}
    for curves, name, title in ((train, "train_curves", "training"),
                                (valid, "valid_curves", "validation")):
        if curves:
            path = args.out / f"{args.prefix}{name}.png"
            written[path] = plot_curves(curves, path, title)
    if rows:
        tests = {t for r in rows for t in (*r.wer, *r.cer)}
        test_sets = [t for t in KNOWN_TEST_ORDER if t in tests]
        test_sets += sorted(tests - set(KNOWN_TEST_ORDER))
        path = args.out / f"{args.prefix}results.png"
        written[path] = plot_results(rows, test_sets, path)
    if not written:
        raise SystemExit(
            f"plot: nothing to plot in {', '.join(str(d) for d in args.exp_dirs)} "
            "(see the warnings above)"
        )
    for path in written:
        logging.info("wrote %s", path)
    return written


if __name__ == "__main__":
    main()
