"""Stage 6: Libri-Light unlabeled parts cut into pretraining segments.

    python -m hourglass_w2v2.bin.prepare_librilight --corpus-dir download/librilight \
        --manifest-dir data/manifests --parts small [--segment-by vad|window]

Writes ``librilight_{recordings,supervisions,cuts}_<part>.jsonl.gz``; a part whose cut set
exists is skipped. Exit status 1 with a message naming the file when the tree is not usable.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hourglass_w2v2.bin.prepare_manifests import LOG_FORMAT
from hourglass_w2v2.data.prepare.cuts import MIN_SAMPLE_SIZE
from hourglass_w2v2.data.prepare.librilight import (
    SEGMENT_MODES,
    BadLibriLightError,
    check_tree,
    prepare_librilight_part,
)
from hourglass_w2v2.models import SAMPLE_RATE


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", required=True,
                        help="the folder holding small/ medium/ large/ (unpacked .tar files)")
    parser.add_argument("--manifest-dir", required=True)
    parser.add_argument("--parts", nargs="+", required=True, help="small, medium and/or large")
    parser.add_argument("--segment-by", choices=SEGMENT_MODES, default="vad",
                        help="vad: merge the shipped VAD stretches; window: fixed windows")
    parser.add_argument("--max-duration", type=float, default=30.0,
                        help="longest segment (vad) or window length (window), seconds")
    parser.add_argument("--min-duration", type=float, default=MIN_SAMPLE_SIZE / SAMPLE_RATE,
                        help="shorter segments are dropped and counted (seconds)")
    parser.add_argument("--overlap", type=float, default=0.0,
                        help="window: seconds shared by consecutive windows")
    parser.add_argument("--num-jobs", type=int, default=8, help="threads reading audio headers")
    return parser


def main() -> None:
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    args = get_parser().parse_args()
    try:
        for part in args.parts:  # every part's layout first, so a bad one fails at once
            check_tree(args.corpus_dir, part)
        for part in args.parts:
            prepare_librilight_part(args.corpus_dir, part, args.manifest_dir, args.segment_by,
                                    args.max_duration, args.min_duration, args.overlap,
                                    args.num_jobs)
    except (BadLibriLightError, ValueError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
