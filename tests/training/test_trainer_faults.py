"""Faults around a training run: unreadable checkpoints, killed saves, a metrics log that
outran its checkpoint, missing data and a truncated ``--init``; each is named, none is silent."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from hourglass_w2v2.bin import finetune, pretrain
from hourglass_w2v2.checkpoint import list_checkpoints, load_checkpoint
from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.trainer import ResumeError, Trainer


def _killed_after_update_6(exp, tmp_path):
    """A copy of the run as if killed after logging update 6 but before ckpt-6 was renamed
    into place: its metrics log runs 3 updates past its newest checkpoint, and ends in a
    line cut short."""
    copy = tmp_path / "exp"
    shutil.copytree(exp, copy)
    (copy / "checkpoints" / "ckpt-6.pt").unlink()
    with (copy / "log" / "train_metrics.jsonl").open("a") as f:
        f.write('{"update": 7, "loss": 3.1')
    return copy


def test_metrics_log_holds_each_update_once_after_a_resume(six_updates, tmp_path, corpus, helpers):
    copy = _killed_after_update_6(six_updates, tmp_path)
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus))
    Trainer(cfg, PretrainTask(cfg), copy).fit()
    lines = (copy / "log" / "train_metrics.jsonl").read_text().splitlines()
    updates = [json.loads(line)["update"] for line in lines]  # every line parses
    assert updates == [1, 2, 3, 4, 5, 6]
    first = {json.loads(line)["update"]: json.loads(line) for line in lines}
    original = helpers.read_metrics(six_updates)
    assert first[2]["loss"] == original[2]["loss"]  # the lines before the checkpoint are kept
    assert abs(first[5]["loss"] - original[5]["loss"]) <= 1e-6  # and the redone ones match


def test_temp_files_of_a_killed_save_are_removed_at_start(
    six_updates, tmp_path, corpus, helpers, caplog
):
    copy = _killed_after_update_6(six_updates, tmp_path)
    stale = [
        copy / "checkpoints" / ".ckpt-6.pt.x8k2_q0p.tmp",
        copy / ".train_info.json.abcd1234.tmp",
        copy / ".config.yaml.zz99yy88.tmp",
    ]
    for p in stale:
        p.write_bytes(b"half a file")
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus))
    Trainer(cfg, PretrainTask(cfg), copy).fit()
    assert not any(p.exists() for p in stale)
    for p in stale:
        assert f"removed {p}, left by a save that was interrupted" in caplog.text
    assert json.loads((copy / "train_info.json").read_text())["updates"] == 6


def test_newer_unreadable_checkpoint_is_set_aside_not_kept_by_rotation(
    six_updates, tmp_path, corpus, helpers, caplog
):
    copy = _killed_after_update_6(six_updates, tmp_path)
    ckpts = copy / "checkpoints"
    (ckpts / "ckpt-9.pt").write_bytes(b"not a checkpoint")  # sorts after every new one
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus, keep_last=1))
    Trainer(cfg, PretrainTask(cfg), copy).fit()
    assert "ckpt-3.pt (update 3)" in caplog.text
    assert f"set aside unreadable checkpoint {ckpts / 'ckpt-9.pt'} as" in caplog.text
    assert [u for u, _ in list_checkpoints(ckpts)] == [6]
    assert load_checkpoint(ckpts / "ckpt-6.pt")["update"] == 6
    assert (ckpts / "ckpt-9.pt.corrupt").read_bytes() == b"not a checkpoint"


def test_no_loadable_checkpoint_refuses_then_restarts_with_the_flag(
    corpus, tmp_path, capsys, helpers
):
    ckpts = tmp_path / "exp" / "checkpoints"
    ckpts.mkdir(parents=True)
    for step in (30, 60):
        (ckpts / f"ckpt-{step}.pt").write_bytes(b"truncated")
    config = helpers.write_config(
        tmp_path / "c.yaml", helpers.tiny_pretrain_config(corpus, keep_last=2)
    )
    args = ["--config", str(config), "--exp-dir", str(tmp_path / "exp")]
    assert pretrain.main(args) == 2
    err = capsys.readouterr().err
    assert f"no checkpoint in {ckpts} can be loaded (ckpt-30.pt, ckpt-60.pt" in err
    assert "--restart-from-scratch" in err and "Traceback" not in err
    assert sorted(p.name for p in ckpts.iterdir()) == ["ckpt-30.pt", "ckpt-60.pt"]
    with pytest.raises(ResumeError, match="--restart-from-scratch"):  # the Python API too
        cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus))
        Trainer(cfg, PretrainTask(cfg), tmp_path / "exp").fit()

    assert pretrain.main(["--restart-from-scratch", *args]) == 0
    err = capsys.readouterr().err
    assert "set aside unreadable checkpoint" in err and "ckpt-60.pt.corrupt" in err
    assert [u for u, _ in list_checkpoints(ckpts)] == [3, 6]  # rotation kept the new ones
    assert load_checkpoint(ckpts / "ckpt-6.pt")["update"] == 6
    assert (ckpts / "ckpt-30.pt.corrupt").exists() and (ckpts / "ckpt-60.pt.corrupt").exists()


def test_config_yaml_and_train_info_are_replaced_atomically(corpus, tmp_path, helpers, monkeypatch):
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus))
    trainer = Trainer(cfg, PretrainTask(cfg), tmp_path)
    trainer.resolved_config, trainer.num_params = cfg.to_dict(), 10
    trainer.write_config()
    trainer.write_train_info()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["config.yaml", "train_info.json"]
    trainer.update, trainer.resolved_config["trainer"]["seed"] = 5, 7

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the write fails before the rename
    for write in (trainer.write_config, trainer.write_train_info):
        with pytest.raises(OSError, match="No space"):
            write()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def _manifests(tmp_path, corpus):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for part in ("train", "valid"):
        shutil.copy(corpus[part], manifests / f"synth_cuts_{part}.jsonl.gz")
    return manifests


@pytest.mark.parametrize(
    "data,message",
    [
        (
            {"train_parts": ["name-that-does-not-exist"]},
            "data.train_parts: part 'name-that-does-not-exist' has no cut set {m}/"
            "synth_cuts_name-that-does-not-exist.jsonl.gz; the parts there are: train, valid",
        ),
        (
            {"valid_parts": ["dev"]},  # found before training, not at the first validation
            "data.valid_parts: part 'dev' has no cut set {m}/synth_cuts_dev.jsonl.gz",
        ),
        (
            {"valid_parts": ["valid"], "corpus": "librispeech"},
            "{m} holds no 'librispeech' cut sets (check data.manifest_dir and data.corpus",
        ),
    ],
)
def test_missing_data_part_is_named(corpus, tmp_path, capsys, helpers, data, message):
    manifests = _manifests(tmp_path, corpus)
    cfg = helpers.tiny_pretrain_config(corpus)
    cfg["data"] = {
        **cfg["data"],
        "train_cuts": None,
        "valid_cuts": None,
        "manifest_dir": str(manifests),
        "train_parts": ["train"],
        "valid_parts": ["valid"],
        **data,
    }
    config = helpers.write_config(tmp_path / "c.yaml", cfg)
    rc = pretrain.main(["--config", str(config), "--exp-dir", str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message.format(m=manifests) in err and "Traceback" not in err
    assert not (tmp_path / "exp" / "checkpoints").exists()  # nothing was trained


def test_truncated_init_checkpoint_is_named(corpus, six_updates, tmp_path, capsys):
    init = tmp_path / "pretrained.pt"
    data = (six_updates / "checkpoints" / "ckpt-6.pt").read_bytes()
    init.write_bytes(data[: len(data) // 3])  # an interrupted copy
    config = tmp_path / "c.yaml"
    config.write_text(
        f"task: ctc\nctc:\n  lang_dir: {corpus['lang']}\ndata:\n"
        f"  train_cuts: [{corpus['train']}]\n  valid_cuts: [{corpus['valid']}]\n"
    )
    rc = finetune.main(
        ["--config", str(config), "--exp-dir", str(tmp_path / "e"), "--init", str(init)]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"checkpoint {init} cannot be loaded: the file is truncated, corrupt" in err
    assert "Traceback" not in err
    assert torch.load(six_updates / "checkpoints" / "ckpt-6.pt", weights_only=False)["update"] == 6


def _tensorboard_steps(exp) -> dict[str, list[int]]:
    """Steps of each scalar as tensorboard shows them (its reader drops purged steps)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: sorted(e.step for e in acc.Scalars(t)) for t in ("train/loss", "valid/loss")}


def test_tensorboard_keeps_every_update_after_a_resume_and_a_rerun_of_a_finished_run(
    six_updates, tmp_path, corpus, helpers
):
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus))
    finished = tmp_path / "finished"
    shutil.copytree(six_updates, finished)
    before = _tensorboard_steps(finished)
    assert before["train/loss"] == [1, 2, 3, 4, 5, 6] and 6 in before["valid/loss"]
    Trainer(cfg, PretrainTask(cfg), finished).fit()  # already done: nothing to train
    assert _tensorboard_steps(finished) == before  # update 6 is not purged
    resumed = _killed_after_update_6(six_updates, tmp_path)  # resumes from ckpt-3
    Trainer(cfg, PretrainTask(cfg), resumed).fit()
    assert _tensorboard_steps(resumed) == before  # 1-3 kept, 4-6 written again, each once
