"""benchmarks/gpu.sh: says how to run it on any CUDA machine, and stops with a reason elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.sh"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run gpu.sh ARGS with no GPU visible to torch, writing under tmp_path."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               OUT=str(tmp_path / "out"), CUDA_VISIBLE_DEVICES="")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_header_says_how_to_run_it_on_any_cuda_machine():
    header = SCRIPT.read_text().split("set -euo pipefail", 1)[0]
    assert "any machine with one CUDA GPU" in header
    assert "CUDA_VISIBLE_DEVICES" in header and "$OUT when it is set" in header
    for word in ("session", "lent", "device tool", "wheels"):
        assert word not in header


def test_unknown_part_prints_usage_before_touching_a_gpu(tmp_path):
    out = run(tmp_path, "speed")
    assert out.returncode == 2
    assert "usage:" in out.stderr and "encoder|encoder-eager|train" in out.stderr
    assert not (tmp_path / "out/device.txt").exists()


def test_without_a_cuda_gpu_it_stops_saying_why(tmp_path):
    out = run(tmp_path, "train")
    assert out.returncode == 1
    assert "no CUDA GPU visible to torch (torch.cuda.is_available() is False)" in out.stderr
    assert list((tmp_path / "out").iterdir()) == []
