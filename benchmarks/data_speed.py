"""Pretraining data loading: the lazy FLAC cut set vs Lhotse Shar shards, 1 and 2 workers.

Each setting builds the training data the way the trainer does (``PretrainDataset`` behind
``UpdateBatchSampler`` over a ``DynamicBucketingSampler`` for FLAC; ``shar_train_data``'s
dataset and ``ShardedBatchSampler`` for Shar) and times one epoch through a ``DataLoader`` with
``num_workers`` processes, from creating the loader to the last batch (the Shar sampler's
metadata pass included). It prints cuts/s and audio-s/s delivered (audio counted before the
crop) and the ratio to FLAC with the same workers. Without ``--cuts`` it writes a corpus of
``--num-cuts`` FLAC files of ``--seconds`` seconds (tones in noise) to a temporary folder; the
files are then in the page cache, as a second epoch's would be.

    python benchmarks/data_speed.py --num-cuts 300 --seconds 12 --shard-size 25
    python benchmarks/data_speed.py --cuts data/manifests/librispeech_cuts_pretrain.jsonl.gz
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from lhotse import CutSet, Recording

from hourglass_w2v2.data.datasets import (
    PretrainDataset,
    ShardedPretrainDataset,
    ShardStreams,
    make_sampler,
)
from hourglass_w2v2.data.prepare.shar import shar_shards, write_shar
from hourglass_w2v2.models import SAMPLE_RATE
from hourglass_w2v2.training.sampling import ShardedBatchSampler, UpdateBatchSampler


def write_corpus(folder: Path, num_cuts: int, seconds: float, seed: int = 0) -> Path:
    """``num_cuts`` FLAC files of about ``seconds`` s (±20%) and their cut set; return its path."""
    rng = np.random.default_rng(seed)
    cuts = []
    for i in range(num_cuts):
        n = int(seconds * rng.uniform(0.8, 1.2) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 900) * t) + 0.05 * rng.standard_normal(n)
        path = folder / f"utt{i:05d}.flac"
        sf.write(path, audio.astype(np.float32), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        cuts.append(Recording.from_file(path, recording_id=path.stem).to_cut())
    out = folder / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(out)
    return out


def time_epoch(dataset, sampler, num_workers: int) -> tuple[int, float, float]:
    """(cuts, audio seconds, wall seconds) of one epoch through a DataLoader."""
    batches = UpdateBatchSampler(sampler, world_size=1, rank=0, accum_grad=1)
    batches.set_epoch(0)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    start = time.perf_counter()
    loader = torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None,
                                         num_workers=num_workers)
    cuts = samples = 0
    for batch in loader:
        cuts += len(batch["cut_ids"])
        samples += batch["num_samples"]
    return cuts, samples / SAMPLE_RATE, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", help="a cut set to read (default: generate one)")
    parser.add_argument("--num-cuts", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=12.0, help="generated cut length")
    parser.add_argument("--shard-size", type=int, default=25, help="cuts per Shar shard")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds per batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cuts_path = Path(args.cuts) if args.cuts else write_corpus(tmp, args.num_cuts, args.seconds)
        shar_dir = tmp / "shar"
        write_shar([cuts_path], shar_dir, shard_size=args.shard_size, seed=None)
        sampler_args = dict(max_duration=args.max_duration, shuffle=True, seed=0, num_buckets=4)
        shards = shar_shards(shar_dir)
        total = sum(c.duration for c in CutSet.from_jsonl_lazy(cuts_path))
        print(f"# {platform.node()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
              f"{cuts_path.name}: {total / 3600:.3f} h; Shar: {len(shards)} shards of "
              f"{args.shard_size} cuts; batches of {args.max_duration:g} s")
        print("| data | workers | cuts | audio s | wall s | cuts/s | audio-s/s | vs FLAC |")
        print("|---|---|---|---|---|---|---|---|")
        for workers in args.workers:
            flac_rate = None
            for name in ("FLAC (lazy cut set)", "Shar"):
                if name == "Shar":
                    streams = ShardStreams(shards, sampler_args)
                    dataset = ShardedPretrainDataset(streams, seed=0)
                    sampler = ShardedBatchSampler(streams, max(1, workers), 0, True)
                else:
                    dataset = PretrainDataset(seed=0)
                    sampler = make_sampler(CutSet.from_jsonl_lazy(cuts_path), **sampler_args)
                cuts, audio, wall = time_epoch(dataset, sampler, workers)
                rate = audio / wall
                flac_rate = flac_rate or rate
                print(f"| {name} | {workers} | {cuts} | {audio:.0f} | {wall:.2f} | "
                      f"{cuts / wall:.1f} | {rate:.0f} | {rate / flac_rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
