"""Stage 2: Libri-Light limited-resource fine-tuning subsets (train-10min, train-1h, train-10h).

    # LibriSpeech: read Libri-Light's librispeech_finetuning folder
    python -m hourglass_w2v2.bin.prepare_finetune_subsets --manifest-dir data/manifests \
        --prefix librispeech --finetuning-dir download/librispeech_finetuning
    # synth: draw scaled, speaker-balanced, nested subsets from train-clean-100
    python -m hourglass_w2v2.bin.prepare_finetune_subsets --manifest-dir data/manifests \
        --prefix synth --from-pool train-clean-100
"""

from __future__ import annotations

import argparse

from hourglass_w2v2.bin._common import exit_on, setup_logging
from hourglass_w2v2.data.prepare.librispeech import BadCorpusError
from hourglass_w2v2.data.prepare.subsets import prepare_librilight_subsets, prepare_scaled_subsets


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest-dir", required=True)
    parser.add_argument("--prefix", required=True, help="corpus name: librispeech or synth")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--finetuning-dir", help="Libri-Light's librispeech_finetuning folder")
    source.add_argument("--from-pool", help="stage-1 part to draw scaled subsets from")
    parser.add_argument("--scale", type=float,
                        help="--from-pool: fraction of Libri-Light's sizes (default pool hours/10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-bad", action="store_true",
                        help="--finetuning-dir: leave out bad utterances instead of failing")
    parser.add_argument("--num-jobs", type=int, default=4)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run stage 2; a missing folder or a bad corpus file is logged and exits with status 1."""
    setup_logging()
    args = get_parser().parse_args(argv)
    with exit_on(BadCorpusError, FileNotFoundError):
        if args.finetuning_dir:
            prepare_librilight_subsets(args.finetuning_dir, args.manifest_dir, args.prefix,
                                       skip_bad=args.skip_bad, num_jobs=args.num_jobs)
        else:
            prepare_scaled_subsets(args.manifest_dir, args.prefix, pool=args.from_pool,
                                   scale=args.scale, seed=args.seed)


if __name__ == "__main__":
    main()
