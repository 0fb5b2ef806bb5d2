"""CTC fine-tuning of a pretrained (or from-scratch) model (run.sh stage 2).

    torchrun --nproc-per-node N -m hourglass_w2v2.bin.finetune \\
        --config conf/finetune_tiny_10min.yaml --exp-dir exp/NAME \\
        (--init exp/PRETRAIN/checkpoints/ckpt-N.pt | --init-from-scratch) [--avg N] [key=value ...]

``--init`` also takes a pretraining exp dir (its newest checkpoint) or a fairseq / HF /
torchaudio wav2vec 2.0 checkpoint (imported through ``hourglass_w2v2.convert``). ``--avg N``
writes ``averaged.pt`` from the last N checkpoints.
Resuming, ``--restart-from-scratch`` and ``--allow-config-change`` work as in ``bin/pretrain.py``.
"""

from __future__ import annotations

import argparse
import sys

from hourglass_w2v2.training.cli import base_parser, run
from hourglass_w2v2.training.ctc_task import CtcTask


def build_parser() -> argparse.ArgumentParser:
    """The command line: :func:`base_parser`'s with ``--init`` / ``--init-from-scratch`` and
    ``--avg``."""
    parser = base_parser(__doc__.splitlines()[0])
    init = parser.add_mutually_exclusive_group()
    init.add_argument(
        "--init",
        help="pretraining checkpoint or exp dir (its newest checkpoint), or a "
        "fairseq/HF/torchaudio checkpoint to import",
    )
    init.add_argument("--init-from-scratch", action="store_true", help="baseline: random init")
    parser.add_argument(
        "--avg",
        type=int,
        default=None,
        help="average the last N checkpoints into averaged.pt at the end",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    extra = []
    if args.init is not None:
        extra.append(f"ctc.init={args.init}")
    if args.init_from_scratch:
        extra.append("ctc.init_from_scratch=true")
    if args.avg is not None:
        extra.append(f"ctc.average_last={args.avg}")
    return run(args, "ctc", CtcTask, extra)


if __name__ == "__main__":
    sys.exit(main())
