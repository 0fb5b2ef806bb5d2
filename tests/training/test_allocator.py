"""trainer.reuse_freed_memory: glibc keeps what a step frees for the next step.

Each check runs in its own process: the allocator setting is process-wide and permanent.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

#: six 16 MiB buffers a step, ten steps after a first one (4 KiB pages)
STEPS, BUFFERS, PAGES_PER_BUFFER = 10, 6, (16 << 20) // 4096

STEP_SCRIPT = textwrap.dedent(
    f"""
    import resource, sys, torch
    from hourglass_w2v2.training import allocator
    if sys.argv[1] == "reuse":
        assert allocator.reuse_freed_memory()
    else:  # glibc's documented default threshold, held fixed
        import ctypes
        assert ctypes.CDLL("libc.so.6").mallopt(allocator.M_MMAP_THRESHOLD, 128 << 10) == 1
    def step():
        bufs = [torch.ones(4 << 20) for _ in range({BUFFERS})]  # 16 MiB activations
        return sum(float(b[-1]) for b in bufs)
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({STEPS}):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _page_faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", STEP_SCRIPT, mode], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")
def test_steps_reuse_freed_buffers_instead_of_faulting_pages_back_in():
    pages = STEPS * BUFFERS * PAGES_PER_BUFFER
    default, reuse = _page_faults("default"), _page_faults("reuse")
    # buffers above glibc's default mmap threshold are mapped and unmapped every step, so
    # every step faults all its pages in (glibc's dynamic threshold, when it has risen, keeps
    # them in a heap that it trims when 32 MiB lie free at the top: all, some or none of the
    # pages, from run to run)
    assert default >= 0.9 * pages, (default, pages)
    # kept: the steps after the first run in memory already faulted in
    assert reuse <= pages / 20, (reuse, pages)


def test_trainer_with_reused_memory_trains_the_same_values(corpus, tmp_path, helpers):
    losses = {}
    for reuse in (False, True):
        cfg = helpers.tiny_pretrain_config(corpus, max_updates=4, reuse_freed_memory=reuse)
        config = helpers.write_config(tmp_path / f"{reuse}.yaml", cfg)
        exp = tmp_path / f"exp-{reuse}"
        proc = helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(exp))
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-3000:]
        assert ("glibc keeps freed buffers" in log) == reuse
        losses[reuse] = [r["loss"] for _, r in sorted(helpers.read_metrics(exp).items())]
    assert len(losses[True]) == 4
    assert losses[True] == losses[False]  # bit for bit
