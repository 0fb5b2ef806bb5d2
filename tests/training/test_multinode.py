"""run.sh's torchrun beyond one process group: two "nodes" on this host, a worker killed mid-run.

Both tests run the synth recipe's ``run.sh`` stage 1 (the real torchrun, one gloo process per
CPU) and compare with one reference: a single process accumulating 2 micro-batches per update,
the same training as 2 processes with 1 each (``derive_accum_grad``). The two "nodes" are two
``run.sh --nnodes 2 --node-rank R --rdzv-endpoint 127.0.0.1:PORT`` meeting at a c10d rendezvous;
the fault run is ``run.sh --world-size 2 --max-restarts 1`` whose rank-1 worker gets SIGKILL
after a checkpoint, so torchrun restarts both workers and they resume by themselves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hourglass_w2v2.checkpoint import list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parents[2]
UPDATES = 6


def free_port() -> int:
    """A TCP port nobody listens on now (bind port 0, read what the kernel gave)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sh(work: Path, *args: str) -> subprocess.Popen:
    """Start ``./run.sh --stage 1 --stop-stage 1 ARGS`` in ``work`` with this venv's python."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.Popen(["./run.sh", "--stage", "1", "--stop-stage", "1", *args], cwd=work,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    """Wait for ``proc``; return its output after checking it exited 0 (kill it on timeout)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        out, _ = proc.communicate()
        pytest.fail(f"timed out; output so far:\n{out}")
    assert proc.returncode == 0, out
    return out


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and every process below it, if still running (a failed test's job)."""
    if proc.poll() is None:
        for pid in descendants(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first), from /proc."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [p for c in children for p in [c, *descendants(c)]]


def worker_of_rank(pid: int, rank: int) -> int | None:
    """The training process below ``pid`` whose environment says ``RANK=rank``."""
    for child in descendants(pid):
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"hourglass_w2v2.bin.pretrain" in cmdline and f"RANK={rank}".encode() in environ:
            return child
    return None


def max_param_diff(a: Path, b: Path) -> float:
    """Largest absolute difference between the model weights of two checkpoints."""
    pa, pb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert pa.keys() == pb.keys()
    return max((pa[k] - pb[k]).abs().max().item() for k in pa)


@pytest.fixture(scope="module")
def setup(corpus, tmp_path_factory, helpers) -> dict:
    """The config (global batch = 2 x max_duration), the one-process reference run and a
    recipe folder (run.sh and utils of the synth recipe)."""
    root = tmp_path_factory.mktemp("multinode")
    cfg = helpers.tiny_pretrain_config(
        corpus, max_updates=UPDATES, save_interval=2, keep_last=10, global_batch_duration=6.0
    )
    cfg["data"]["num_workers"] = 1  # a prefetching loader must not shift the resume point
    cfg["model"].update(dropout=0.1, dropout_input=0.1)  # so the restored RNG state matters
    config = helpers.write_config(root / "c.yaml", cfg)
    ref = root / "one"
    out = finish(helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(ref)))
    assert "1 process(es) x accum 2" in out
    work = root / "SSL"
    work.mkdir()
    (work / "run.sh").symlink_to(REPO / "egs/synth/SSL/run.sh")
    (work / "utils").symlink_to(REPO / "utils")
    return {"config": str(config), "ref": ref / "checkpoints", "work": work}


@pytest.mark.timeout(300)
def test_two_nodes_on_c10d_rendezvous_equal_one_process_accumulating(setup, tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    exp = tmp_path / "two"
    nodes = [
        run_sh(setup["work"], "--train-config", setup["config"], "--exp-dir", str(exp),
               "--nnodes", "2", "--node-rank", str(r), "--rdzv-endpoint", endpoint)
        for r in (0, 1)
    ]
    try:
        outs = [finish(n) for n in nodes]
    finally:
        for n in nodes:
            stop(n)
    assert all("on 2 node(s) x 1 process(es)" in o for o in outs)
    assert any("2 process(es) x accum 1" in o for o in outs), outs
    name = f"ckpt-{UPDATES}.pt"
    assert len(load_checkpoint(exp / "checkpoints" / name)["rng"]) == 2  # both nodes took part
    assert max_param_diff(setup["ref"] / name, exp / "checkpoints" / name) <= 1e-5


@pytest.mark.timeout(300)
def test_worker_killed_mid_run_restarts_and_resumes_to_the_same_model(setup, tmp_path):
    exp = tmp_path / "killed"
    job = run_sh(setup["work"], "--train-config", setup["config"], "--exp-dir", str(exp),
                 "--world-size", "2", "--max-restarts", "1")
    try:
        deadline = time.time() + 200
        victim = None
        while time.time() < deadline and job.poll() is None:
            if (exp / "checkpoints" / "ckpt-2.pt").exists():
                victim = worker_of_rank(job.pid, 1)
                break
            time.sleep(0.05)
        assert victim is not None, "the run ended or timed out before its first checkpoint"
        os.kill(victim, signal.SIGKILL)
        out = finish(job)
    finally:
        stop(job)
    assert f"failed (exitcode: -9) local_rank: 1 (pid: {victim})" in out, out
    # the same job went on: its restarted workers resumed from a checkpoint of the killed ones
    resumed = [u for u, _ in list_checkpoints(exp / "checkpoints") if 2 <= u < UPDATES]
    assert any(f"ckpt-{u}.pt (update {u})" in out for u in resumed), out
    name = f"ckpt-{UPDATES}.pt"
    assert max_param_diff(setup["ref"] / name, exp / "checkpoints" / name) <= 1e-5


@pytest.mark.parametrize("shared, restarts, warned", [
    ("True", "3", True), ("False", "3", False), ("True", "0", False)])
def test_workers_warn_when_a_restart_could_hang_on_the_shared_store(
        monkeypatch, caplog, shared, restarts, warned):
    from hourglass_w2v2.training.distributed import warn_if_restarts_can_hang

    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", shared)
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", restarts)
    with caplog.at_level("WARNING"):
        warn_if_restarts_can_hang()
    assert ("start torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in caplog.text) == warned


def _resume_rank(rank: int, port: int, cfg: dict, exp: str, fault: str, out: dict) -> None:
    """Rank ``rank`` of 2: build a trainer on ``exp`` and resume; rank 1 sees ``fault``."""
    import hourglass_w2v2.checkpoint as ckpt_module
    import hourglass_w2v2.training.trainer as trainer_module
    from hourglass_w2v2.checkpoint import CheckpointError
    from hourglass_w2v2.training.config import ExperimentConfig
    from hourglass_w2v2.training.distributed import cleanup_distributed
    from hourglass_w2v2.training.pretrain_task import PretrainTask
    from hourglass_w2v2.training.trainer import ResumeError, Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    if rank == 1 and fault == "stale listing":  # a file system that does not list the newest yet
        listed = ckpt_module.list_checkpoints

        def stale(d):
            return listed(d)[:-1]

        ckpt_module.list_checkpoints = trainer_module.list_checkpoints = stale
    if rank == 1 and fault == "unreadable":  # a node whose copy of the newest file is damaged
        def unreadable(path, map_location="cpu"):
            raise CheckpointError(f"checkpoint {path} cannot be loaded: the file is truncated")

        ckpt_module.load_checkpoint = trainer_module.load_checkpoint = unreadable
    c = ExperimentConfig.from_dict(cfg)
    trainer = Trainer(c, PretrainTask(c), exp)
    try:
        trainer._build()
        trainer._resume()
        out[rank] = trainer.update
    except ResumeError as e:
        out[rank] = str(e)
    finally:
        cleanup_distributed()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["stale listing", "unreadable"])
def test_every_rank_resumes_from_the_checkpoint_rank_0_picked(setup, tmp_path, fault):
    import shutil

    import torch.multiprocessing as mp
    import yaml

    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    for u in (2, 4):
        shutil.copy(setup["ref"] / f"ckpt-{u}.pt", exp / "checkpoints")
    cfg = yaml.safe_load(Path(setup["config"]).read_text())
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_resume_rank, args=(free_port(), cfg, str(exp), fault, out), nprocs=2)
        got = dict(out)
    if fault == "stale listing":
        assert got == {0: 4, 1: 4}
    else:
        path = exp / "checkpoints" / "ckpt-4.pt"
        message = (f"rank 1 cannot read {path}, the checkpoint rank 0 resumes from (checkpoint "
                   f"{path} cannot be loaded: the file is truncated)")
        assert message in got[0] and got[0] == got[1]
