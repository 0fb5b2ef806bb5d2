"""Metrics are summed over ranks by name, whatever order each rank listed them in; ranks that
log different names fail loudly instead of hanging."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hourglass_w2v2.training.distributed import all_reduce_sum_by_name


def _rank(rank: int, init_file: str, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        # the two ranks build their dicts in opposite orders
        names = ["loss", "accuracy", "_sample_size"]
        values = {"loss": 1.5, "accuracy": 0.25, "_sample_size": 10.0}
        order = names if rank == 0 else names[::-1]
        sums = {k: torch.tensor(values[k] * (rank + 1), dtype=torch.float64) for k in order}
        out[rank] = all_reduce_sum_by_name(sums)
    finally:
        dist.destroy_process_group()


def test_sums_meet_by_name_across_ranks(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(str(tmp_path / "init"), out), nprocs=2, join=True)
        got = dict(out)
    expected = {"loss": 4.5, "accuracy": 0.75, "_sample_size": 30.0}
    assert got[0] == got[1] == expected


def test_one_process_returns_the_values_as_floats():
    sums = {"b": torch.tensor(2.0), "a": torch.tensor(1, dtype=torch.int64)}
    assert all_reduce_sum_by_name(sums) == {"a": 1.0, "b": 2.0}


def _rank_other_names(rank: int, init_file: str, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        # rank 1 has a metric rank 0 lacks, and one fewer of the same count: both must fail
        names = ["loss", "accuracy"] if rank == 0 else ["loss", "blank_share", "accuracy"]
        sums = {k: torch.tensor(1.0, dtype=torch.float64) for k in names}
        try:
            all_reduce_sum_by_name(sums)
            out[rank] = "no error"
        except RuntimeError as e:
            out[rank] = str(e)
    finally:
        dist.destroy_process_group()


def test_ranks_with_other_metric_names_fail_on_every_rank(tmp_path):
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank_other_names, args=(str(tmp_path / "init"), out), nprocs=2, join=True)
        got = dict(out)
    assert got[0].startswith("rank 0: the ranks log different metrics (this rank: accuracy, loss)")
    assert got[1].startswith("rank 1: the ranks log different metrics (this rank: accuracy, blank")
