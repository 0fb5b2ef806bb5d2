"""Pretraining cuts as Lhotse Shar shards (recipe stage 7).

Shar keeps each shard as ``cuts.<n>.jsonl.gz`` (the cut metadata) next to ``recording.<n>.tar``
(the cuts' audio, FLAC-encoded, one member per cut), so training reads each shard front to back
instead of opening one file per cut. The cuts are shuffled with a seed before they are dealt into
shards, so that every shard mixes speakers and sources; training then shuffles the shard order
every epoch. The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from lhotse import CutSet

from hourglass_w2v2.fileio import atomic_output_dir

SHAR_AUDIO_FORMAT = "flac"  # lossless, so Shar training reads the samples the FLAC path reads


def shar_shards(shar_dir: str | Path) -> list[dict[str, str]]:
    """The shards of a Shar folder in order, each ``{"cuts": path, "recording": path}``.

    Raises ``FileNotFoundError`` naming the folder when it holds no shard, or a shard whose
    audio tar is missing (an interrupted copy).
    """
    shar_dir = Path(shar_dir)
    cuts = sorted(shar_dir.glob("cuts.*.jsonl.gz"))
    if not cuts:
        raise FileNotFoundError(
            f"{shar_dir} holds no Shar shard (cuts.<n>.jsonl.gz); run prepare.sh stage 7")
    shards = []
    for c in cuts:
        number = c.name[len("cuts."):-len(".jsonl.gz")]
        tar = shar_dir / f"recording.{number}.tar"
        if not tar.is_file():
            raise FileNotFoundError(f"Shar shard {c} has no audio {tar.name} next to it; "
                                    "copy it, or rerun prepare.sh stage 7 into a new folder")
        shards.append({"cuts": str(c), "recording": str(tar)})
    return shards


def write_shar(cut_paths: list[str | Path], out_dir: str | Path, shard_size: int = 1000,
               seed: int | None = 42, num_jobs: int = 1) -> tuple[int, int, float]:
    """Write the cuts of ``cut_paths`` (shuffled with ``seed``; None keeps their order) as Shar
    shards in ``out_dir``.

    Returns ``(shards, cuts, hours)``. ``out_dir`` must not exist yet; the shards go to a
    temporary sibling folder renamed to ``out_dir`` once all are written, so a killed run
    leaves no ``out_dir`` that looks complete.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; remove it to write the shards again")
    for p in cut_paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"cut set {p} does not exist (run the stage that makes it)")
    # Metadata only: the whole set is shuffled in memory, the audio is read shard by shard.
    cuts = CutSet.from_cuts(c for p in cut_paths for c in CutSet.from_jsonl_lazy(p)).to_eager()
    if len(cuts) == 0:
        raise ValueError(f"no cuts in {', '.join(map(str, cut_paths))}")
    if seed is not None:
        cuts = cuts.shuffle(random.Random(seed))
    with atomic_output_dir(out_dir) as tmp:
        written = cuts.to_shar(tmp, fields={"recording": SHAR_AUDIO_FORMAT},
                               shard_size=shard_size, num_jobs=num_jobs)
    hours = sum(c.duration for c in cuts) / 3600
    logging.info("%s: %d shards of up to %d cuts, %d cuts, %.3f h", out_dir,
                 len(written["cuts"]), shard_size, len(cuts), hours)
    return len(written["cuts"]), len(cuts), hours
