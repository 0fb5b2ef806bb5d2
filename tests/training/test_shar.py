"""Pretraining from Lhotse Shar shards: dealing, per-worker streams, FLAC equality, resume."""

from __future__ import annotations

import shutil

import pytest
import torch
from lhotse import CutSet

from hourglass_w2v2.data.datasets import ShardedPretrainDataset, ShardStreams, ShardTicket
from hourglass_w2v2.data.prepare.shar import shar_shards, write_shar
from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.sampling import ShardedBatchSampler, UpdateBatchSampler
from hourglass_w2v2.training.trainer import Trainer

SAMPLER_ARGS = dict(max_duration=3.0, shuffle=True, seed=3, num_buckets=2)


@pytest.fixture(scope="module")
def shar_dir(corpus, tmp_path_factory):
    """The training cuts in their cut-set order, 4 cuts a shard (6 shards)."""
    out = tmp_path_factory.mktemp("shar") / "pretrain"
    write_shar([corpus["train"]], out, shard_size=4, seed=None)
    return out


def _sampler(shar_dir, k=2, world_size=1, accum=1, shuffle=True):
    sampler = ShardedBatchSampler(ShardStreams(shar_shards(shar_dir), SAMPLER_ARGS), k, 7,
                                  shuffle)
    sampler.deal(world_size, accum)
    return sampler


def test_ranks_and_workers_read_disjoint_shards_reshuffled_each_epoch(shar_dir):
    sampler = _sampler(shar_dir, k=2, world_size=3)
    plans = [sampler.rank_streams(e) for e in range(3)]
    for plan in plans:
        assert len(plan) == 3 and all(len(rank) == 2 for rank in plan)
        shards = [i for rank in plan for stream in rank for i in stream]
        assert sorted(shards) == list(range(6))  # each shard read by exactly one stream
    assert plans[0] != plans[1] != plans[2]
    assert sampler.rank_streams(1) == plans[1]  # drawn from (seed, epoch): repeatable
    assert _sampler(shar_dir, shuffle=False).rank_streams(5) == [[(0, 2, 4), (1, 3, 5)]]


def test_tickets_are_laid_out_for_the_update_dealing(shar_dir):
    sampler = _sampler(shar_dir, k=2, world_size=2, accum=2)
    sampler.set_epoch(1)
    tickets = list(sampler)
    plan = sampler.rank_streams(1)
    assert len(tickets) % 4 == 0 and tickets
    for g, t in enumerate(tickets):
        update, rank, a = g // 4, (g % 4) // 2, g % 2
        i = update * 2 + a  # the rank's position: stream i % 2, batch i // 2
        assert t == ShardTicket(1, plan[rank][i % 2], i // 2)
    # as many updates as the shortest stream allows on every rank
    lengths = [[sampler.streams.count_batches(1, s) for s in rank] for rank in plan]
    assert len(tickets) // 4 == min(2 * min(r) for r in lengths) // 2
    assert sampler.dropped_batches == sum(map(sum, lengths)) - len(tickets)


def test_too_few_shards_for_ranks_and_workers_is_an_error(shar_dir):
    sampler = ShardedBatchSampler(ShardStreams(shar_shards(shar_dir), SAMPLER_ARGS), 4, 7, True)
    with pytest.raises(ValueError, match="data.shar_dir has 6 shards, fewer than the 2 rank"):
        UpdateBatchSampler(sampler, world_size=2, rank=0, accum_grad=1)


class _WhereDataset(ShardedPretrainDataset):
    """Records which DataLoader worker made each batch, and from which stream."""

    def __getitem__(self, ticket):
        out = super().__getitem__(ticket)
        out["worker"] = torch.utils.data.get_worker_info().id
        out["stream"] = ticket.shards
        return out


def test_each_worker_reads_one_stream_also_after_skipping(shar_dir, corpus):
    streams = ShardStreams(shar_shards(shar_dir), SAMPLER_ARGS)
    dataset = _WhereDataset(streams, seed=3)
    batches = UpdateBatchSampler(ShardedBatchSampler(streams, 2, 7, True), 1, 0, 1)
    for skip in (0, 1):  # skipping an odd number of batches shifts streams to other workers
        batches.set_epoch(0, skip_steps=skip)
        loader = torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None,
                                             num_workers=2)
        seen = {}
        got = [(b["worker"], tuple(b["stream"]), b["cut_ids"]) for b in loader]
        for worker, stream, _ in got:
            assert seen.setdefault(worker, stream) == stream
        assert len(seen) == 2 and len(set(seen.values())) == 2
        if skip == 0:
            full = [ids for _, _, ids in got]
        else:
            assert [ids for _, _, ids in got] == full[1:]
    # the batches hold each cut at most once, and only cuts of the corpus
    ids = [i for b in full for i in b]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {c.id for c in CutSet.from_file(corpus["train"])}


def _run(cfg_dict, exp):
    cfg = ExperimentConfig.from_dict(cfg_dict)
    Trainer(cfg, PretrainTask(cfg), exp).fit()


def test_shar_training_repeats_the_flac_loss_curve(corpus, shar_dir, tmp_path, helpers):
    flac = helpers.tiny_pretrain_config(corpus, max_updates=4, save_interval=4)
    flac["data"]["shuffle"] = False
    shar = {**flac, "data": {**flac["data"], "shar_dir": str(shar_dir)}}
    shar_cfg = ExperimentConfig.from_dict(shar)
    assert isinstance(PretrainTask(shar_cfg).train_data()[0], ShardedPretrainDataset)
    _run(flac, tmp_path / "flac")
    _run(shar, tmp_path / "shar")
    a, b = helpers.read_metrics(tmp_path / "flac"), helpers.read_metrics(tmp_path / "shar")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for u in a:
        assert b[u]["loss"] == pytest.approx(a[u]["loss"], rel=1e-6), u
        assert b[u]["audio_seconds"] == a[u]["audio_seconds"]


def test_resume_mid_epoch_sees_the_same_batches(corpus, shar_dir, tmp_path, helpers):
    cfg = helpers.tiny_pretrain_config(corpus, max_updates=6, save_interval=2, keep_last=0,
                                       accum_grad=2)
    cfg["data"].update(shar_dir=str(shar_dir), num_workers=2)
    _run(cfg, tmp_path / "full")
    # a crash after update 2: only its checkpoint survives, training goes on from there
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    for n in (4, 6):
        (tmp_path / "resumed" / "checkpoints" / f"ckpt-{n}.pt").unlink()
    kept = torch.load(tmp_path / "resumed/checkpoints/ckpt-2.pt", weights_only=False)
    assert kept["sampler"]["epoch"] == 0 and kept["sampler"]["step_in_epoch"] == 2  # mid-epoch
    _run(cfg, tmp_path / "resumed")
    a = helpers.read_metrics(tmp_path / "full")
    b = helpers.read_metrics(tmp_path / "resumed")
    assert sorted(b) == [1, 2, 3, 4, 5, 6]
    for u in (3, 4, 5, 6):
        assert b[u]["loss"] == a[u]["loss"] and b[u]["audio_seconds"] == a[u]["audio_seconds"]
    full = torch.load(tmp_path / "full/checkpoints/ckpt-6.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed/checkpoints/ckpt-6.pt", weights_only=False)
    assert full["epoch"] >= 1  # the run crossed into a reshuffled epoch
    for k, v in full["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=0, atol=0)


def test_shar_config_errors_name_the_key(corpus, shar_dir, tmp_path, helpers):
    cfg = helpers.tiny_pretrain_config(corpus)
    cfg["data"]["shar_dir"] = str(tmp_path / "nowhere")
    task = PretrainTask(ExperimentConfig.from_dict(cfg))
    with pytest.raises(FileNotFoundError, match=r"data.shar_dir: .*nowhere holds no Shar shard"):
        task.train_data()
    cfg["data"].update(shar_dir=str(shar_dir), speed_perturb=[0.9, 1.1])
    task = PretrainTask(ExperimentConfig.from_dict(cfg))
    with pytest.raises(ValueError, match="speed_perturb cannot be combined with data.shar_dir"):
        task.train_data()


def test_two_ranks_each_train_on_their_planned_streams(corpus, shar_dir, tmp_path, helpers):
    import os
    import subprocess
    import sys

    cfg = helpers.tiny_pretrain_config(corpus, max_updates=5, save_interval=5)
    cfg["data"]["shar_dir"] = str(shar_dir)
    config = helpers.write_config(tmp_path / "c.yaml", cfg)
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "hourglass_w2v2.bin.pretrain", "--config", str(config), "--exp-dir",
         str(tmp_path / "two")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # the audio of each update is what the plan deals: rank r's stream batch, cropped
    sampler = ShardedBatchSampler(ShardStreams(shar_shards(shar_dir), dict(
        max_duration=3.0, shuffle=True, seed=3, num_buckets=2)), 1, 3, True)
    sampler.deal(2, 1)
    expected = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = {}
        for t in sampler:
            if t.shards not in batches:
                batches[t.shards] = list(sampler.streams.batches(epoch, t.shards, False))
            cuts = batches[t.shards][t.batch]
            expected.append(len(cuts) * min(min(c.num_samples for c in cuts), 250_000) / 16000)
    expected = [a + b for a, b in zip(expected[::2], expected[1::2], strict=True)]
    m = helpers.read_metrics(tmp_path / "two")
    assert sorted(m) == [1, 2, 3, 4, 5]
    assert [m[u]["audio_seconds"] for u in sorted(m)] == pytest.approx(expected[:5])
