"""Stage 0 of egs/synth/SSL: generate the espeak-ng corpus in the LibriSpeech layout.

    python -m hourglass_w2v2.bin.generate_synth_corpus --out-dir download --size default

Writes ``<out-dir>/LibriSpeech/{train-clean-100,dev-clean,test-clean,test-other}/...`` and
``<out-dir>/lm/lm-norm.txt``, and logs counts, hours, vocabulary size and the 3-gram perplexity
of the test sentences.
"""

from __future__ import annotations

import argparse
import logging

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.data.synth.corpus import SIZES, CorpusSize, SubsetSize, generate_corpus


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", required=True, help="download directory of the recipe")
    parser.add_argument("--size", choices=sorted(SIZES), default="default",
                        help="tiny (tests), default (~1 h train), large (>= 10 h train)")
    parser.add_argument("--train-speakers", type=int, help="override the size's train speakers")
    parser.add_argument("--utts-per-speaker", type=int,
                        help="override the size's train utterances per chapter")
    parser.add_argument("--eval-utts", type=int,
                        help="override utterances per speaker of dev-clean/test-clean/test-other")
    parser.add_argument("--lm-sentences", type=int, help="extra LM-text sentences")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--num-jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    return parser


def main() -> None:
    setup_logging()
    args = get_parser().parse_args()
    base = SIZES[args.size]
    size = CorpusSize(
        train=SubsetSize(args.train_speakers or base.train.speakers, base.train.chapters,
                         args.utts_per_speaker or base.train.utterances),
        evaluation=SubsetSize(base.evaluation.speakers, base.evaluation.chapters,
                              args.eval_utts or base.evaluation.utterances),
        lm_sentences=args.lm_sentences if args.lm_sentences is not None else base.lm_sentences,
    )
    stats = generate_corpus(args.out_dir, size, seed=args.seed, num_jobs=args.num_jobs,
                            force=args.force)
    for subset, s in stats["subsets"].items():
        logging.info(f"{subset}: {s['speakers']} speakers, {s['utterances']} utterances, "
                     f"{s['hours']:.3f} h")
    logging.info(
        f"vocabulary {stats['vocabulary_size']} words (grammar {stats['grammar_vocabulary_size']})"
        f", LM text {stats['lm_text_sentences']} sentences; test perplexity: 3-gram "
        f"{stats['test_3gram_perplexity']}, 1-gram {stats['test_1gram_perplexity']} "
        f"({stats['test_oov_words']} OOV of {stats['test_words']} words)")


if __name__ == "__main__":
    main()
