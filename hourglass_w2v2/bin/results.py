"""Print one WER/CER table across experiment directories (run.sh stage 4).

    python -m hourglass_w2v2.bin.results exp/* [--csv results.csv] [--out results.md]

Rows are experiment x decoding method x key, columns the test sets (WER and CER), parameters,
pretraining updates, fine-tuning updates and hours, and the decoding real-time factor.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hourglass_w2v2.results import collect, table, to_csv, to_markdown


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("exp_dirs", nargs="+", type=Path, help="experiment directories")
    p.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # `exp/*` also matches files such as exp/demo_results.md: skip them, but not a typo'd dir
    missing = [str(d) for d in args.exp_dirs if not d.exists()]
    if missing:
        raise SystemExit(f"no such experiment directory: {', '.join(missing)}")
    rows, test_sets = collect([d for d in args.exp_dirs if d.is_dir()])
    if not rows:
        raise SystemExit(
            f"no decode results (decode/*/wer-summary-*.txt) in {[str(d) for d in args.exp_dirs]}"
        )
    header, cells = table(rows, test_sets)
    markdown = to_markdown(header, cells)
    print(markdown, end="")
    if args.out is not None:
        args.out.write_text(markdown, encoding="utf-8")
    if args.csv is not None:
        args.csv.write_text(to_csv(header, cells), encoding="utf-8")


if __name__ == "__main__":
    main()
