"""Stage 1: lhotse recording/supervision manifests of a LibriSpeech-layout corpus.

    python -m hourglass_w2v2.bin.prepare_manifests --corpus-dir download/LibriSpeech \
        --manifest-dir data/manifests --prefix librispeech [--parts dev-clean ...] [--skip-bad]

Every folder is checked first; a missing/corrupt/zero-length audio file, a transcript line
without audio, audio without a transcript line or an empty transcript stops the stage before
anything is written, naming the files (``--skip-bad`` leaves them out and counts them instead).
"""

from __future__ import annotations

import argparse

from hourglass_w2v2.bin._common import LOG_FORMAT, exit_on, setup_logging
from hourglass_w2v2.data.prepare.librispeech import BadCorpusError, prepare_corpus_manifests

__all__ = ["LOG_FORMAT", "get_parser", "main"]  # LOG_FORMAT: what the other stage tools import


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", required=True, help="the LibriSpeech folder")
    parser.add_argument("--manifest-dir", required=True)
    parser.add_argument("--prefix", required=True, help="corpus name: librispeech or synth")
    parser.add_argument("--parts", nargs="*", help="default: every LibriSpeech part present")
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out bad utterances (and count them) instead of failing")
    parser.add_argument("--num-jobs", type=int, default=4, help="threads reading audio headers")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run stage 1; a missing folder or a bad corpus file is logged and exits with status 1."""
    setup_logging()
    args = get_parser().parse_args(argv)
    with exit_on(BadCorpusError, FileNotFoundError):
        prepare_corpus_manifests(args.corpus_dir, args.manifest_dir, args.prefix, args.parts,
                                 skip_bad=args.skip_bad, num_jobs=args.num_jobs)


if __name__ == "__main__":
    main()
