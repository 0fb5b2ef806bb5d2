"""benchmarks/train_speed.py --trainer: times the real trainer without changing what it trains.

Lives next to the trainer tests for their small corpus fixture.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.trainer import Trainer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def bench():
    # importable by name, as the bare loop's process (spawned) finds its function by module
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_speed"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["train_speed"]
    sys.path.remove(str(SCRIPT.parent))


def test_trainer_mode_trains_what_the_trainer_trains_and_times_it(bench, corpus, tmp_path, helpers):
    cfg = helpers.tiny_pretrain_config(corpus, max_updates=4)
    config = helpers.write_config(tmp_path / "conf.yaml", cfg)
    threads = torch.get_num_threads()
    r = bench.run_trainer(config, [], threads=1, updates=4, warmup=1, bare_updates=2)
    assert torch.get_num_threads() == threads  # put back after the run
    assert r["threads"] == 1
    # the same config through the plain trainer: the timing subclass changes no loss
    plain = ExperimentConfig.from_dict(cfg)
    Trainer(plain, PretrainTask(plain), tmp_path / "plain").fit()
    logged = helpers.read_metrics(tmp_path / "plain")
    assert [x["loss"] for x in r["records"]] == pytest.approx(
        [logged[u]["loss"] for u in (1, 2, 3, 4)], rel=1e-6
    )
    assert [x["audio"] for x in r["records"]] == pytest.approx(
        [logged[u]["audio_seconds"] for u in (1, 2, 3, 4)]
    )
    timed = r["records"][1:]
    expected = sum(x["audio"] for x in timed) / sum(x["seconds"] for x in timed)
    assert r["audio_s_per_s"] == pytest.approx(expected)
    for key in ("trainer_same_batches", "bare_audio_s_per_s"):
        assert math.isfinite(r[key]) and r[key] > 0


def test_window_means_drop_the_last_partial_block(bench):
    assert bench.window_means([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [1.5, 3.5]
    assert bench.window_means([1.0, 2.0], 3) == []


def test_trainer_mode_without_a_corpus_says_how_to_make_it(tmp_path):
    config = tmp_path / "SSL" / "conf" / "pretrain.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("task: pretrain\n")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--trainer", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert f"no pretraining cuts in {tmp_path / 'SSL' / 'data' / 'manifests'}" in out.stderr
    assert f"cd {tmp_path / 'SSL'} && ./prepare.sh --bpe-vocab-sizes ''" in out.stderr


@pytest.mark.parametrize("key", ["polyphase_conv_backward", "reuse_freed_memory"])
def test_the_demo_trains_with_its_cpu_options_and_fp32_is_measured_without_them(bench, key):
    from hourglass_w2v2.training.config import load_config

    def on(setting: str) -> bool:
        overrides, _ = bench.SETTINGS[setting]
        return getattr(load_config(bench.DEMO_CONFIG, overrides).trainer, key)

    for config in ("pretrain_tiny_hourglass_demo.yaml", "finetune_tiny_10min_demo.yaml"):
        assert getattr(load_config(bench.DEMO_CONFIG.parent / config, []).trainer, key), config
    assert on("polyphase-reuse") and on("polyphase-fused-reuse")
    assert on("polyphase") == on("polyphase-fused") == (key == "polyphase_conv_backward")
    for setting in ("fp32", "exact", "bf16", "compile", "threads1"):
        assert not on(setting), setting


def test_trainer_mode_runs_each_setting_in_a_process_of_its_own(corpus, tmp_path, helpers):
    """The table from the command line: a setting that changes the allocator for good
    (reuse_freed_memory) runs in its own process, and leaves the same losses."""
    manifests = tmp_path / "SSL" / "data" / "manifests"
    manifests.mkdir(parents=True)
    shutil.copy(corpus["train"], manifests / "synth_cuts_pretrain.jsonl.gz")
    (tmp_path / "SSL" / "conf").mkdir()
    cfg = helpers.tiny_pretrain_config(corpus)
    config = helpers.write_config(tmp_path / "SSL" / "conf" / "pretrain.yaml", cfg)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--trainer", "--config", str(config), "--updates", "3"]
        + ["--warmup", "1", "--bare-updates", "1", "--settings", "polyphase-reuse", "fp32"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines() if line.startswith("| ")]
    assert [r[0].strip() for r in rows[1:]] == ["polyphase-reuse", "fp32"]
    assert "trainer.reuse_freed_memory=true" in rows[1][1]
    assert "trainer.reuse_freed_memory=false" in rows[2][1]
    assert float(rows[2][4]) > 0 and float(rows[2][7]) == 0.0  # no gap in the loss curve


def test_repeated_runs_give_medians_and_each_rounds_ratio(bench):
    """--repeats: a row is the median of its runs, and its ratio the median of the per-round
    ratios to the reference run of the same round (a drifting machine cancels out)."""

    def run(speed: float, trainer: float, bare: float) -> dict:
        records = [{"loss": 4.0 - 0.01 * i, "audio": 20.0, "seconds": 0.2} for i in range(4)]
        return {
            "records": records,
            "threads": 2,
            "audio_s_per_s": speed,
            "trainer_same_batches": trainer,
            "bare_audio_s_per_s": bare,
        }

    runs = {
        "fp32": [run(80.0, 80.0, 100.0), run(100.0, 90.0, 100.0), run(90.0, 45.0, 50.0)],
        "polyphase-reuse": [run(120.0, 1.0, 1.0), run(110.0, 1.0, 2.0), run(99.0, 3.0, 4.0)],
    }
    ref = bench._median_row("fp32", runs, "fp32", 2)
    row = bench._median_row("polyphase-reuse", runs, "fp32", 2)
    assert (ref["audio_s_per_s"], ref["ratio"], ref["share"]) == (90.0, 1.0, 0.9)
    assert ref["bare_audio_s_per_s"] == 100.0
    # rounds: 120/80 = 1.5, 110/100 = 1.1, 99/90 = 1.1; not 110/90 = 1.22 of the medians
    assert row["audio_s_per_s"] == 110.0 and row["ratio"] == pytest.approx(1.1)
    assert row["share"] == 0.75  # of 1.0, 0.5, 0.75
    assert row["curve"] == pytest.approx([3.995, 3.975])
    assert row["final_loss"] == pytest.approx(3.975)
    assert "trainer.polyphase_conv_backward=true" in row["overrides"]


def test_the_demo_pretrains_with_the_setting_benchmarked_as_its_own(bench):
    """docs/benchmarks.md gives `polyphase-reuse-onednn` as the demo pretraining's setting and
    `polyphase-fused-reuse-onednn` as that plus fused AdamW (not the demo's: RESULTS.md)."""
    from hourglass_w2v2.training.config import load_config

    keys = ("polyphase_conv_backward", "reuse_freed_memory", "onednn_linear")
    demo = load_config(bench.DEMO_CONFIG, [])
    for name, fused in (("polyphase-reuse-onednn", False), ("polyphase-fused-reuse-onednn", True)):
        cfg = load_config(bench.DEMO_CONFIG, bench.SETTINGS[name][0])
        assert [getattr(cfg.trainer, k) for k in keys] == [True, True, True], name
        assert cfg.optim.fused_cpu is fused, name
    assert [getattr(demo.trainer, k) for k in keys] == [True, True, True]
    assert demo.optim.fused_cpu is False
    finetune = load_config(bench.DEMO_CONFIG.parent / "finetune_tiny_10min_demo.yaml", [])
    assert finetune.trainer.onednn_linear is False and finetune.optim.fused_cpu is False
