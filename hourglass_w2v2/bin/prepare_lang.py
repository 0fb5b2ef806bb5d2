"""Make a lang dir: sentencepiece units, words.txt and lexicons (prepare.sh stage 4).

    python -m hourglass_w2v2.bin.prepare_lang --unit bpe --vocab-size 500 \\
        --text data/lang/transcripts.txt --words-text download/lm/lm-norm.txt \\
        --lang-dir data/lang_bpe_500
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.lang.prepare import prepare_lang


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--unit", required=True, choices=["char", "bpe"])
    p.add_argument("--vocab-size", type=int, default=None, help="number of BPE units (--unit bpe)")
    p.add_argument(
        "--text",
        nargs="+",
        required=True,
        type=Path,
        help="transcripts the units are trained on: text files (one sentence a line) "
        "or lhotse cut/supervision manifests",
    )
    p.add_argument(
        "--words-text",
        nargs="*",
        default=[],
        type=Path,
        help="extra text whose words join the word list (e.g. the LM text)",
    )
    p.add_argument("--lang-dir", required=True, type=Path)
    return p


def main(argv: list[str] | None = None) -> None:
    """Make the lang dir; bad input (too many BPE units for the text, a missing or empty text)
    exits with status 1 and one line, and leaves no empty lang dir behind."""
    args = get_parser().parse_args(argv)
    setup_logging()
    existed = args.lang_dir.exists()
    try:
        prepare_lang(args.text, args.lang_dir, args.unit, args.vocab_size, args.words_text)
    except (ValueError, FileNotFoundError) as e:
        if not existed and args.lang_dir.is_dir() and not any(args.lang_dir.iterdir()):
            args.lang_dir.rmdir()
        raise SystemExit(f"prepare_lang: error: {e}") from None


if __name__ == "__main__":
    main()
