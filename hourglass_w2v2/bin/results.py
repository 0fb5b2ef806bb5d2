"""Print one WER/CER table across experiment directories (run.sh stage 4).

    python -m hourglass_w2v2.bin.results exp/* [--csv results.csv] [--out results.md]
        [--baseline exp/scratch]

Rows are experiment x decoding method x key, columns the test sets (WER and CER), parameters,
pretraining updates, fine-tuning updates and hours, and the decoding real-time factor. With
``--baseline``, a list after the table gives each other experiment's best key per method, test
set and metric against the baseline's, as a relative change; ``--verdict`` adds one sentence
for the first experiment: does it beat the baseline on test-clean (else the first test set), by
1best-HLG WER and greedy CER?

A file that cannot be read (truncated ``train_info.json`` or ``rtf-*.json``, a summary with a
NaN or negative rate) is left out of the table and named, with what is wrong, in a list after
it; ``--strict`` makes that an error (exit status 1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.fileio import atomic_write_text
from hourglass_w2v2.results import (
    collect,
    compare_to_baseline,
    table,
    to_csv,
    to_markdown,
    verdict,
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("exp_dirs", nargs="+", type=Path, help="experiment directories")
    p.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="experiment dir (or its name) the others are compared with, e.g. a scratch run",
    )
    p.add_argument(
        "--verdict",
        action="store_true",
        help="with --baseline: end with one sentence on whether the first experiment beats it",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit status 1) when a results file cannot be read, instead of leaving it out",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Print (and write) the results table of the experiment directories given."""
    args = get_parser().parse_args(argv)
    setup_logging()
    # `exp/*` also matches files such as exp/demo_results.md: skip them, but not a typo'd dir
    missing = [str(d) for d in args.exp_dirs if not d.exists()]
    if missing:
        raise SystemExit(f"no such experiment directory: {', '.join(missing)}")
    problems: list[str] = []
    rows, test_sets = collect([d for d in args.exp_dirs if d.is_dir()], problems)
    if problems and args.strict:
        raise SystemExit("unreadable results files (--strict):\n  " + "\n  ".join(problems))
    if not rows:
        raise SystemExit(
            f"no decode results (decode/*/wer-summary-*.txt) in {[str(d) for d in args.exp_dirs]}"
        )
    header, cells = table(rows, test_sets)
    markdown = to_markdown(header, cells)
    if problems:
        markdown += "\nLeft out of the table (unreadable files):\n\n"
        markdown += "".join(f"- {p}\n" for p in problems)
    if args.baseline is not None:
        try:
            lines = compare_to_baseline(rows, args.baseline.name, test_sets)
        except ValueError as e:
            raise SystemExit(f"--baseline: {e}") from e
        markdown += "\n" + "\n".join(lines) + "\n"
        if args.verdict:
            first = args.exp_dirs[0].name
            try:
                test = "test-clean" if "test-clean" in test_sets else test_sets[0]
                markdown += "\n" + verdict(rows, first, args.baseline.name, test) + "\n"
            except ValueError as e:
                raise SystemExit(f"--verdict: {e}") from e
    elif args.verdict:
        raise SystemExit("--verdict needs --baseline")
    print(markdown, end="")
    if args.out is not None:
        atomic_write_text(args.out, markdown)
    if args.csv is not None:
        atomic_write_text(args.csv, to_csv(header, cells))


if __name__ == "__main__":
    main()
