"""Resuming with another config: a change to what the updates compute (a seed, say) is refused,
naming the key, unless --allow-config-change; a longer trainer.max_updates re-plans the lr
schedule from the update reached; keys that only say how the run is carried out may change."""

from __future__ import annotations

import shutil

import pytest
import yaml

from hourglass_w2v2.bin import pretrain
from hourglass_w2v2.training.config import (
    ExperimentConfig,
    config_changes,
    may_change_on_resume,
)
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.trainer import ResumeError, Trainer


def _copy(exp, tmp_path):
    """A copy of the shared finished run (conftest's ``six_updates``) to resume."""
    copy = tmp_path / "exp"
    shutil.copytree(exp, copy)
    return copy


def test_another_seed_is_refused_naming_the_key(six_updates, corpus, tmp_path, capsys, helpers):
    exp = _copy(six_updates, tmp_path)
    config = helpers.write_config(tmp_path / "c.yaml", helpers.tiny_pretrain_config(corpus))
    args = ["--config", str(config), "--exp-dir", str(exp), "trainer.seed=4"]
    assert pretrain.main(args) == 2
    err = capsys.readouterr().err
    assert f"{exp / 'checkpoints' / 'ckpt-6.pt'} was trained with another config" in err
    assert "trainer.seed: 3 there, 4 here" in err
    assert "--allow-config-change" in err and "Traceback" not in err
    # nothing was touched: config.yaml still describes the run the checkpoints hold
    assert yaml.safe_load((exp / "config.yaml").read_text())["trainer"]["seed"] == 3
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["ckpt-3.pt", "ckpt-6.pt"]

    # the Python API refuses too, and names every key that differs
    d = helpers.tiny_pretrain_config(corpus, seed=4)
    d["model"]["mask_prob"] = 0.5
    cfg = ExperimentConfig.from_dict(d)
    with pytest.raises(ResumeError, match=r"model\.mask_prob: 0\.65 there, 0\.5 here; trainer\.s"):
        Trainer(cfg, PretrainTask(cfg), exp).fit()


def test_allow_config_change_goes_on_with_the_new_values(
    six_updates, corpus, tmp_path, capsys, helpers
):
    exp = _copy(six_updates, tmp_path)
    config = helpers.write_config(tmp_path / "c.yaml", helpers.tiny_pretrain_config(corpus))
    args = [
        "--config",
        str(config),
        "--exp-dir",
        str(exp),
        "trainer.seed=4",
        "trainer.max_updates=7",
    ]
    assert pretrain.main(["--allow-config-change", *args]) == 0
    err = capsys.readouterr().err
    assert "resuming with trainer.seed changed: 3 -> 4" in err
    assert "resuming with trainer.max_updates changed: 6 -> 7" in err
    assert yaml.safe_load((exp / "config.yaml").read_text())["trainer"]["seed"] == 4
    metrics = helpers.read_metrics(exp)
    assert sorted(metrics) == [1, 2, 3, 4, 5, 6, 7]


def test_longer_max_updates_replans_the_lr_schedule(six_updates, corpus, tmp_path, helpers):
    """Warm-up 2, linear decay to 0 at max_updates: update n (1-based) trains at
    lr x (1 - (n - 1 - 2) / (max_updates - 2)) after the warm-up. The finished run reached 0 at
    update 6; resumed with max_updates 10, updates 7-10 follow the 10-update plan."""
    exp = _copy(six_updates, tmp_path)
    before = helpers.read_metrics(exp)
    assert [before[n]["lr"] for n in (1, 2, 3, 6)] == pytest.approx([5e-4, 1e-3, 1e-3, 2.5e-4])
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus, max_updates=10))
    Trainer(cfg, PretrainTask(cfg), exp).fit()
    after = helpers.read_metrics(exp)
    assert sorted(after) == list(range(1, 11))
    expected = [1e-3 * (1 - (n - 3) / 8) for n in (7, 8, 9, 10)]  # 5e-4, 3.75e-4, 2.5e-4, 1.25e-4
    assert [after[n]["lr"] for n in (7, 8, 9, 10)] == pytest.approx(expected, rel=1e-6)
    assert after[5]["loss"] == before[5]["loss"]  # the updates before the resume are kept


def test_keys_that_do_not_change_the_updates_may_change(
    six_updates, corpus, tmp_path, caplog, helpers
):
    exp = _copy(six_updates, tmp_path)
    d = helpers.tiny_pretrain_config(corpus, log_interval=2, valid_interval=3)
    d["health"]["warmup_updates"] = 10
    d["data"]["num_workers"] = 1
    cfg = ExperimentConfig.from_dict(d)
    with caplog.at_level("INFO"):
        Trainer(cfg, PretrainTask(cfg), exp).fit()
    said = caplog.text
    for change in (
        "trainer.log_interval changed: 1 -> 2",
        "health.warmup_updates changed: 1000 -> 10",
        "data.num_workers changed: 0 -> 1",
    ):
        assert f"resuming with {change}" in said


def test_config_changes_walks_nested_keys():
    old = {"trainer": {"seed": 3, "betas": (0.9, 0.98)}, "model": {"hourglass": [1, [2, 4], 1]}}
    new = {"trainer": {"seed": 4, "betas": [0.9, 0.98], "added": 1}, "model": {"hourglass": None}}
    assert config_changes(old, new) == [
        ("model.hourglass", [1, [2, 4], 1], None),
        ("trainer.seed", 3, 4),
    ]
    assert config_changes(old, old) == []
    assert may_change_on_resume("trainer.max_updates") and may_change_on_resume("health.window")
    assert not may_change_on_resume("trainer.seed") and not may_change_on_resume("optim.lr")
    assert not may_change_on_resume("schedule.warmup_updates")


def test_a_shorter_run_than_the_checkpoint_is_refused(six_updates, corpus, tmp_path, helpers):
    exp = _copy(six_updates, tmp_path)
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus, max_updates=4))
    with pytest.raises(
        ResumeError, match=r"ckpt-6.pt is at update 6, past this run's trainer\.max"
    ):
        Trainer(cfg, PretrainTask(cfg), exp).fit()
    assert yaml.safe_load((exp / "config.yaml").read_text())["trainer"]["max_updates"] == 6
