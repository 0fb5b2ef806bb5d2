"""How many updates of one pretraining config take the wall time of N updates of another.

    python -m hourglass_w2v2.bin.equal_time --reference conf/pretrain_tiny_hourglass_large.yaml \\
        --reference-updates 12000 --config conf/pretrain_tiny_large.yaml --exp-dir exp/timing

Trains both configs for ``--timing-updates`` updates each, here and now, with the real trainer
(no validation; the first ``--skip`` updates, data-loader start-up included, are not timed) in
``--exp-dir``/reference and ``--exp-dir``/candidate, and prints
``round(reference_updates * reference_seconds_per_update / candidate_seconds_per_update)``:
the update count that gives the candidate the reference run's compute on this machine
(`make demo-large`'s hourglass vs vanilla comparison). Timing both at the same moment keeps the
ratio fair when the machine's speed drifts between the long runs. The timing runs' figures are
logged and written to ``--exp-dir``/equal_time.json; a second call with the same configs and
``--timing-updates`` reads them from there.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

from hourglass_w2v2.bin._common import setup_logging
from hourglass_w2v2.fileio import atomic_write_text


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reference", required=True, help="pretraining YAML of the reference run")
    p.add_argument("--reference-updates", type=int, required=True, help="its update count")
    p.add_argument("--config", required=True, help="pretraining YAML to give the same time")
    p.add_argument("--exp-dir", type=Path, required=True, help="where the timing runs go")
    p.add_argument("--timing-updates", type=int, default=60, help="timed updates per config")
    p.add_argument("--skip", type=int, default=10, help="untimed updates first")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to both configs")
    return p


def seconds_per_update(
    config: str, exp_dir: Path, skip: int, updates: int, overrides: list[str]
) -> float:
    """Wall seconds per training update of ``config`` after ``skip`` updates, measured by
    training ``skip + updates`` updates with the real trainer in ``exp_dir``."""
    from hourglass_w2v2.training.config import load_config
    from hourglass_w2v2.training.pretrain_task import PretrainTask
    from hourglass_w2v2.training.trainer import Trainer

    class _Timed(Trainer):
        def train_step(self, group):
            out = super().train_step(group)
            if out is not None and self.update in (skip, skip + updates):
                marks.append(time.perf_counter())
            return out

    marks: list[float] = []
    shutil.rmtree(exp_dir, ignore_errors=True)  # a fresh run: a resumed one would time nothing
    cfg = load_config(
        config,
        [
            *overrides,
            f"trainer.max_updates={skip + updates}",
            "trainer.progress=false",
            "data.valid_parts=[]",
            "data.valid_cuts=null",
        ],
    )
    if cfg.task != "pretrain":
        raise SystemExit(f"{config} is a '{cfg.task}' config, expected 'pretrain'")
    _Timed(cfg, PretrainTask(cfg), exp_dir, restart_from_scratch=True).fit()
    if len(marks) != 2:
        raise SystemExit(f"{config}: the timing run in {exp_dir} stopped before {skip + updates}")
    return (marks[1] - marks[0]) / updates


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging()
    if args.reference_updates < 1 or args.timing_updates < 1 or args.skip < 1:
        raise SystemExit("--reference-updates, --timing-updates and --skip must be >= 1")
    record = args.exp_dir / "equal_time.json"
    same = {
        "reference": args.reference,
        "candidate": args.config,
        "timing_updates": args.timing_updates,
    }
    result = json.loads(record.read_text()) if record.is_file() else {}
    if any(result.get(k) != v for k, v in same.items()):  # none yet, or of other configs
        timed = {
            name: seconds_per_update(
                config, args.exp_dir / name, args.skip, args.timing_updates, args.overrides
            )
            for name, config in (("reference", args.reference), ("candidate", args.config))
        }
        result = {
            **same,
            "reference_seconds_per_update": timed["reference"],
            "candidate_seconds_per_update": timed["candidate"],
        }
        atomic_write_text(record, json.dumps(result, indent=2) + "\n")
    ratio = result["reference_seconds_per_update"] / result["candidate_seconds_per_update"]
    updates = max(1, round(args.reference_updates * ratio))
    logging.info(
        "%s: %.3f s/update, %s: %.3f s/update; %d reference updates = %d candidate updates",
        args.reference,
        result["reference_seconds_per_update"],
        args.config,
        result["candidate_seconds_per_update"],
        args.reference_updates,
        updates,
    )
    print(updates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
