"""Build H, L, L_disambig, HL and (with an ARPA LM) G and HLG for a lang dir (prepare.sh stage 5).

    python -m hourglass_w2v2.bin.compile_graphs --lang-dir data/lang_char \\
        --arpa data/lm/G_3_gram.arpa

G is written as ``<arpa stem>.fst.txt`` next to the ARPA file (``data/lm/G_3_gram.fst.txt``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.lang.graphs import compile_graphs


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lang-dir", required=True, type=Path)
    p.add_argument("--arpa", type=Path, default=None, help="n-gram LM for G (no HLG without it)")
    p.add_argument("--max-order", type=int, default=-1, help="use n-grams up to this order only")
    return p


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    setup_logging()
    if args.arpa is not None and not args.arpa.is_file():
        raise SystemExit(f"ARPA file {args.arpa} does not exist")
    compile_graphs(args.lang_dir, args.arpa, max_order=args.max_order)


if __name__ == "__main__":
    main()
