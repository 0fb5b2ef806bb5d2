"""Process-level guarantees: exact resume after SIGKILL, and DDP == accumulation.

Both start several training processes (about 20 s each on 2 idle cores); they stay in the
default suite because they guard what CI must. The in-process resume check is in
``test_pretrain.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch

from hourglass_w2v2.checkpoint import list_checkpoints, load_checkpoint


def _wait(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def test_exact_resume_after_sigkill(corpus, tmp_path, helpers):
    cfg = helpers.tiny_pretrain_config(corpus, max_updates=8, save_interval=2, keep_last=10)
    cfg["data"]["num_workers"] = 1  # prefetching workers must not shift the resume point
    cfg["model"].update(dropout=0.1, dropout_input=0.1, dropout_features=0.1)  # RNG matters
    config = helpers.write_config(tmp_path / "c.yaml", cfg)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_straight = helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(straight))
    victim = helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(resumed))
    deadline = time.time() + 300
    while time.time() < deadline and victim.poll() is None:
        if (resumed / "checkpoints" / "ckpt-4.pt").exists():
            break
        time.sleep(0.05)
    victim.kill()  # SIGKILL: no handler, no final checkpoint
    victim.communicate()
    assert victim.returncode == -9
    resume_from = list_checkpoints(resumed / "checkpoints")[-1][0]
    assert 4 <= resume_from < 8
    out = _wait(helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(resumed)))
    assert f"ckpt-{resume_from}.pt (update {resume_from})" in out
    _wait(run_straight)
    a, b = helpers.read_metrics(straight), helpers.read_metrics(resumed)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    lines = (resumed / "log" / "train_metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["update"] for line in lines] == list(range(1, 9))  # each once
    for u in range(resume_from + 1, 9):
        for key in ("loss", "contrastive_loss", "accuracy", "grad_norm"):
            assert abs(a[u][key] - b[u][key]) <= 1e-6, (u, key, a[u][key], b[u][key])
    pa = load_checkpoint(straight / "checkpoints" / "ckpt-8.pt")["model"]
    pb = load_checkpoint(resumed / "checkpoints" / "ckpt-8.pt")["model"]
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) <= 1e-6


def test_ddp_two_processes_equal_one_process_accumulating(corpus, tmp_path, helpers):
    cfg = helpers.tiny_pretrain_config(
        corpus, max_updates=3, save_interval=3, global_batch_duration=6.0
    )  # 2 x max_duration 3 s
    # LayerDrop draws per shard, so 2 GPUs drop the same layers as 1 GPU accumulating
    cfg["model"].update(dropout=0.1, layerdrop=0.5)
    config = helpers.write_config(tmp_path / "c.yaml", cfg)
    one = helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(tmp_path / "one"))
    out_one = _wait(one)
    assert "1 process(es) x accum 2" in out_one
    two = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "hourglass_w2v2.bin.pretrain",
            "--config",
            str(config),
            "--exp-dir",
            str(tmp_path / "two"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    out_two = _wait(two)
    assert "2 process(es) x accum 1" in out_two
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "ckpt-3.pt")
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "ckpt-3.pt")
    assert len(b["rng"]) == 2 and b["sampler"] == a["sampler"]
    diff = max((a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"])
    assert diff <= 1e-5
    moved = max((a["model"][k] - v).abs().max().item() for k, v in _init_state(cfg).items())
    assert moved > 1e-3  # the comparison is not between two untouched models
    ma, mb = helpers.read_metrics(tmp_path / "one"), helpers.read_metrics(tmp_path / "two")
    for u in (1, 2, 3):
        assert abs(ma[u]["loss"] - mb[u]["loss"]) <= 1e-5


def _init_state(cfg: dict) -> dict[str, torch.Tensor]:
    from hourglass_w2v2.training.config import ExperimentConfig
    from hourglass_w2v2.training.pretrain_task import PretrainTask
    from hourglass_w2v2.training.rng import seed_everything

    c = ExperimentConfig.from_dict(cfg)
    seed_everything(c.trainer.seed)
    return PretrainTask(c).build_model().state_dict()
