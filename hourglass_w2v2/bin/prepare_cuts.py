"""Stage 3: raw-audio 16 kHz cut sets ``<prefix>_cuts_<part>.jsonl.gz`` and ``..._pretrain``.

    python -m hourglass_w2v2.bin.prepare_cuts --manifest-dir data/manifests --prefix synth \
        --parts train-clean-100 train-10min train-1h train-10h dev-clean test-clean test-other \
        --pretrain-parts train-clean-100
"""

from __future__ import annotations

import argparse

from hourglass_w2v2.bin._common import exit_on, setup_logging
from hourglass_w2v2.data.prepare.cuts import MAX_SAMPLE_SIZE, MIN_SAMPLE_SIZE, prepare_cut_sets
from hourglass_w2v2.data.prepare.subsets import FINETUNE_SUBSETS


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest-dir", required=True)
    parser.add_argument("--prefix", required=True, help="corpus name: librispeech or synth")
    parser.add_argument("--parts", nargs="+", required=True, help="parts to make cut sets of")
    parser.add_argument("--pretrain-parts", nargs="+", required=True,
                        help="parts combined into the shuffled <prefix>_cuts_pretrain set")
    parser.add_argument("--min-sample-size", type=int, default=MIN_SAMPLE_SIZE,
                        help="pretrain: skip cuts shorter than this many 16 kHz samples")
    parser.add_argument("--max-sample-size", type=int, default=MAX_SAMPLE_SIZE,
                        help="pretrain: count the cuts longer than this (training crops them to "
                        "it; match the config's data.max_sample_size)")
    parser.add_argument("--finetune-min-duration", type=float, default=0.5,
                        help="bound for the train-10min/1h/10h subsets")
    parser.add_argument("--finetune-max-duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=42, help="shuffling seed of pretrain")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run stage 3; a missing manifest or a bad value is logged and exits with status 1."""
    setup_logging()
    args = get_parser().parse_args(argv)
    with exit_on(FileNotFoundError, ValueError):
        prepare_cut_sets(
            args.manifest_dir, args.prefix, args.parts, args.pretrain_parts,
            min_sample_size=args.min_sample_size, max_sample_size=args.max_sample_size,
            finetune_parts=FINETUNE_SUBSETS,
            finetune_duration=(args.finetune_min_duration, args.finetune_max_duration),
            seed=args.seed)


if __name__ == "__main__":
    main()
