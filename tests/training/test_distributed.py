"""Metrics are summed over ranks by name, whatever order each rank listed them in; ranks that
log different names fail loudly instead of hanging."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hourglass_w2v2.training.distributed import all_reduce_sum_by_name

VALUES = {"loss": 1.5, "accuracy": 0.25, "_sample_size": 10.0}


def _rank(rank: int, init_file: str, out: dict, names_per_rank: list[list[str]]) -> None:
    """Sum ``VALUES`` (times rank + 1) of this rank's names; the sums or the error go to out."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        names = names_per_rank[rank]
        sums = {k: torch.tensor(VALUES[k] * (rank + 1), dtype=torch.float64) for k in names}
        try:
            out[rank] = all_reduce_sum_by_name(sums)
        except RuntimeError as e:
            out[rank] = str(e)
    finally:
        dist.destroy_process_group()


def run_two_ranks(tmp_path, names_per_rank: list[list[str]]) -> dict:
    with mp.Manager() as manager:
        out = manager.dict()
        args = (str(tmp_path / "init"), out, names_per_rank)
        mp.spawn(_rank, args=args, nprocs=2, join=True)
        return dict(out)


def test_sums_meet_by_name_across_ranks(tmp_path):
    # the two ranks build their dicts in opposite orders
    names = ["loss", "accuracy", "_sample_size"]
    got = run_two_ranks(tmp_path, [names, names[::-1]])
    expected = {"loss": 4.5, "accuracy": 0.75, "_sample_size": 30.0}
    assert got[0] == got[1] == expected


def test_one_process_returns_the_values_as_floats():
    sums = {"b": torch.tensor(2.0), "a": torch.tensor(1, dtype=torch.int64)}
    assert all_reduce_sum_by_name(sums) == {"a": 1.0, "b": 2.0}


def test_ranks_with_other_metric_names_fail_on_every_rank(tmp_path):
    # rank 1 has a metric rank 0 lacks: unequal sizes, which would hang or misalign the sums
    got = run_two_ranks(tmp_path, [["loss", "accuracy"], ["loss", "_sample_size", "accuracy"]])
    assert got[0].startswith("rank 0: the ranks log different metrics (this rank: accuracy, loss)")
    assert got[1].startswith("rank 1: the ranks log different metrics (this rank: _sample_size")
