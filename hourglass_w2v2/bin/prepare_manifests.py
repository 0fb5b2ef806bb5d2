"""Stage 1: lhotse recording/supervision manifests of a LibriSpeech-layout corpus.

    python -m hourglass_w2v2.bin.prepare_manifests --corpus-dir download/LibriSpeech \
        --manifest-dir data/manifests --prefix librispeech [--parts dev-clean ...] [--skip-bad]

Every folder is checked first; a missing/corrupt/zero-length audio file, a transcript line
without audio, audio without a transcript line or an empty transcript stops the stage before
anything is written, naming the files (``--skip-bad`` leaves them out and counts them instead).
"""

from __future__ import annotations

import argparse
import logging
import sys

from hourglass_w2v2.data.prepare.librispeech import BadCorpusError, prepare_corpus_manifests

LOG_FORMAT = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"


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


def main() -> None:
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    args = get_parser().parse_args()
    try:
        prepare_corpus_manifests(args.corpus_dir, args.manifest_dir, args.prefix, args.parts,
                                 skip_bad=args.skip_bad, num_jobs=args.num_jobs)
    except (BadCorpusError, FileNotFoundError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
