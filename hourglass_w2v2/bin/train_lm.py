"""Train a back-off n-gram LM (ARPA) on a text file with arpabo (prepare.sh stage 5, synth).

    python -m hourglass_w2v2.bin.train_lm --text download/lm/lm-norm.txt --order 3 \\
        --out data/lm/G_3_gram.arpa
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.lang.lm import train_arpa


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--text", nargs="+", required=True, type=Path, help="one sentence a line")
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--out", required=True, type=Path, help="ARPA file to write")
    p.add_argument(
        "--discount-mass",
        type=float,
        default=0.5,
        help="probability mass each history leaves to back-off (Katz, fixed)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    train_arpa(args.text, args.order, args.out, args.discount_mass)


if __name__ == "__main__":
    main()
