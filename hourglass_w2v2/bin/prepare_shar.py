"""Stage 7: pretraining cut sets written as Lhotse Shar shards (audio in tar files).

    python -m hourglass_w2v2.bin.prepare_shar --out-dir data/shar/pretrain \
        --cuts data/manifests/librispeech_cuts_pretrain.jsonl.gz \
        data/manifests/librilight_cuts_small.jsonl.gz

Training reads the folder with ``data.shar_dir``. Exit status 1 with a message naming the path
when an input is missing or the output folder exists.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hourglass_w2v2.bin.prepare_manifests import LOG_FORMAT
from hourglass_w2v2.data.prepare.shar import write_shar


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", nargs="+", required=True, help="cut sets (.jsonl.gz) to shard")
    parser.add_argument("--out-dir", required=True, help="the Shar folder to create")
    parser.add_argument("--shard-size", type=int, default=1000, help="cuts per shard")
    parser.add_argument("--seed", type=int, default=42, help="shuffles the cuts before sharding")
    parser.add_argument("--num-jobs", type=int, default=1, help="processes writing shards")
    return parser


def main() -> None:
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    args = get_parser().parse_args()
    if args.shard_size < 1:
        logging.error("--shard-size must be >= 1, got %d", args.shard_size)
        sys.exit(1)
    try:
        write_shar(args.cuts, args.out_dir, args.shard_size, args.seed, args.num_jobs)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        logging.error(str(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
