"""Contrastive wav2vec 2.0 pretraining (run.sh stage 1).

    torchrun --nproc-per-node N -m hourglass_w2v2.bin.pretrain \\
        --config conf/pretrain_tiny_hourglass.yaml --exp-dir exp/NAME [key=value ...]

Starting again with the same ``--exp-dir`` resumes from its newest loadable checkpoint. When
it holds checkpoints and none of them loads, training refuses to start (exit status 2) unless
``--restart-from-scratch`` is given, which sets them aside as ``*.corrupt``. It also refuses
(exit status 2, naming the keys) to go on from a checkpoint trained with another config, such
as another ``trainer.seed``, unless ``--allow-config-change`` is given; keys that do not change
what an update computes (``trainer.max_updates``, which re-plans the lr schedule, intervals,
threads, ``health.*``) may change freely.
"""

from __future__ import annotations

import sys

from hourglass_w2v2.training.cli import base_parser, run
from hourglass_w2v2.training.pretrain_task import PretrainTask


def main(argv: list[str] | None = None) -> int:
    args = base_parser(__doc__.splitlines()[0]).parse_args(argv)
    return run(args, "pretrain", PretrainTask)


if __name__ == "__main__":
    sys.exit(main())
