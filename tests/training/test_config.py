"""Experiment config: validation of keys, overrides, global batch -> accumulation, schedules."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from hourglass_w2v2.training.config import ExperimentConfig, apply_overrides, load_config
from hourglass_w2v2.training.optim import (
    PolynomialDecay,
    TriStage,
    build_optimizer,
    build_scheduler,
    param_groups,
)
from hourglass_w2v2.training.trainer import derive_accum_grad


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key 'optim\.lrr'"):
        ExperimentConfig.from_dict({"optim": {"lrr": 1.0}})
    with pytest.raises(ValueError, match=r"unknown config key 'trainer\.max_update'"):
        load_config(None, ["trainer.max_update=5"])
    with pytest.raises(ValueError, match="not key=value"):
        load_config(None, ["trainer.max_updates"])


def test_overrides_parse_yaml_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.1\n  betas: [0.9, 0.98]\n")
    cfg = load_config(
        path,
        [
            "optim.lr=2e-4",
            "trainer.precision=bf16",
            "model.mask_prob=0.5",
            "data.train_parts=[a, b]",
        ],
    )
    assert cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.9, 0.98)
    assert cfg.trainer.precision == "bf16" and cfg.model["mask_prob"] == 0.5
    assert cfg.data.train_parts == ["a", "b"]
    # the resolved config round-trips
    again = ExperimentConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize("world_size,expected", [(1, 8), (2, 4), (8, 1)])
def test_accumulation_from_global_batch(world_size, expected):
    cfg = load_config(None, ["trainer.global_batch_duration=700", "data.max_duration=87.5"])
    assert derive_accum_grad(cfg, world_size) == expected


def test_global_batch_must_divide():
    cfg = load_config(None, ["trainer.global_batch_duration=100", "data.max_duration=30"])
    with pytest.raises(ValueError, match="not a multiple"):
        derive_accum_grad(cfg, 1)


def test_polynomial_schedule():
    f = PolynomialDecay(warmup=10, total=110, end_scale=0.0, power=1.0)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == 0.0
    assert f(500) == 0.0


def test_tri_stage_schedule():
    f = TriStage(total=100, phase_ratio=(0.1, 0.4, 0.5), init_scale=0.01, final_scale=0.05)
    assert f(0) == pytest.approx(0.01) and f(5) == pytest.approx(0.505)
    assert f(10) == 1.0 and f(49) == 1.0
    assert f(75) == pytest.approx(math.exp(math.log(0.05) * 0.5))
    assert f(100) == pytest.approx(0.05) and f(1000) == pytest.approx(0.05)


def test_no_weight_decay_on_norms_and_biases():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = param_groups(model, 0.01, 1e-3)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    cfg = load_config(None, ["optim.optimizer=adamw"]).optim
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.98)


def test_layer_lr_decay_scales_each_depth_and_follows_the_schedule():
    from hourglass_w2v2.models import ModelConfig, build_model

    model = build_model(ModelConfig.preset("tiny-hourglass"), "ctc", vocab_size=5)
    cfg = load_config(None, ["optim.lr=1e-3", "optim.layer_lr_decay=0.5"])
    opt = build_optimizer(model, cfg.optim)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    # 4 layers: head at depth 5 gets the peak, layer i at depth i + 1, the extractor depth 0
    assert lr_of[id(params["ctc_head.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(params["encoder.layers.3.fc1.weight"])] == pytest.approx(5e-4)
    assert lr_of[id(params["encoder.layers.0.fc1.bias"])] == pytest.approx(1e-3 / 16)
    assert lr_of[id(params["feature_extractor.conv_layers.0.conv.weight"])] == pytest.approx(
        1e-3 / 32
    )
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # the logged lr is the peak
    assert sum(len(g["params"]) for g in opt.param_groups) == len(params)
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(params["encoder.layers.0.fc1.bias"]) in no_decay
    assert id(params["encoder.layers.0.fc1.weight"]) not in no_decay
    # the schedule scales every group alike
    cfg.schedule.name, cfg.schedule.phase_ratio = "tri_stage", (0.5, 0.0, 0.5)
    sched = build_scheduler(opt, cfg.schedule, cfg.optim, max_updates=10)
    assert [g["lr"] for g in opt.param_groups][:2] == pytest.approx([1e-5, 1e-5])
    for _ in range(5):
        opt.step()
        sched.step()
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(params["encoder.layers.3.fc1.weight"])] == pytest.approx(5e-4)
    assert lrs[id(params["feature_extractor.conv_layers.0.conv.weight"])] == pytest.approx(
        1e-3 / 32
    )
    with pytest.raises(ValueError, match="layer_lr_decay must be in"):
        build_optimizer(model, type(cfg.optim)(layer_lr_decay=0.0))  # past load_config's check
    with pytest.raises(ValueError, match="Sequential has no layer_depth"):
        param_groups(torch.nn.Sequential(torch.nn.Linear(2, 2)), 0.0, 1e-3, 0.9)


EGS = Path(__file__).resolve().parents[2] / "egs"
RECIPE_CONFIGS = sorted(EGS.glob("*/SSL/conf/*.yaml"))


@pytest.mark.parametrize("path", RECIPE_CONFIGS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_recipe_configs_are_valid(path):
    from hourglass_w2v2.training.pretrain_task import model_config

    cfg = load_config(path)
    assert cfg.task in ("pretrain", "ctc")
    model_cfg = model_config(cfg)  # every model key is a ModelConfig field
    if path.parts[-4] == "librispeech":
        # a global batch that 1, 2, 4 and 8 GPUs can share without changing the result
        for world_size in (1, 2, 4, 8):
            derive_accum_grad(cfg, world_size)
    if cfg.task == "pretrain":
        assert cfg.optim.optimizer == "adamw" and cfg.schedule.name == "polynomial"
    else:
        assert cfg.schedule.name == "tri_stage"
        # wav2vec 2.0's rule for real pretrained models; the synth demo-large config trains a
        # briefly pretrained tiny extractor instead (egs/synth/SSL/RESULTS.md)
        if path.parts[-4] == "librispeech" or path.name == "finetune_tiny_10min.yaml":
            assert cfg.ctc.freeze_feature_extractor
    assert model_cfg.encoder_layers > 0


def test_demo_large_finetuning_restores_the_dropout_pretraining_turned_off():
    """demo-large pretrains without dropout; its fine-tuning config must put the tiny preset's
    dropout back (fine-tuning without it: test-clean greedy CER 39.28 vs 38.41)."""
    from hourglass_w2v2.models import ModelConfig
    from hourglass_w2v2.training.ctc_task import finetune_model_config
    from hourglass_w2v2.training.pretrain_task import model_config

    conf = EGS / "synth" / "SSL" / "conf"
    pretrained = model_config(load_config(conf / "pretrain_tiny_hourglass_large.yaml"))
    assert (pretrained.dropout, pretrained.dropout_input, pretrained.dropout_features) == (0, 0, 0)
    ft_cfg = load_config(conf / "finetune_tiny_10min_large.yaml")
    finetuned = finetune_model_config(pretrained, ft_cfg)
    scratch = model_config(ft_cfg)
    preset = ModelConfig.preset("tiny-hourglass")
    for m in (finetuned, scratch):
        assert (m.dropout, m.dropout_input) == (preset.dropout, preset.dropout_input) == (0.1, 0.1)
    # the fine-tuned model is the pretrained architecture, not the preset's
    assert finetuned.codebook_init == "centered" and finetuned.latent_temp == (2.0, 0.5, 0.99)


def test_base_pretraining_hyperparameters():
    conf = EGS / "librispeech" / "SSL" / "conf"
    for name in ("pretrain_base.yaml", "pretrain_base_hourglass.yaml"):
        cfg = load_config(conf / name)
        o, s, t = cfg.optim, cfg.schedule, cfg.trainer
        assert (o.lr, o.betas, o.eps, o.weight_decay, o.clip_grad_norm) == (
            5e-4,
            (0.9, 0.98),
            1e-6,
            0.01,
            25.0,
        )
        assert (s.warmup_updates, t.max_updates, s.end_lr) == (32000, 400_000, 0.0)
        assert cfg.data.max_duration * 16000 == 1.4e6
        assert t.global_batch_duration / cfg.data.max_duration == 64
        from hourglass_w2v2.training.pretrain_task import model_config

        m = model_config(cfg)
        assert m.feature_grad_mult == 0.1 and m.latent_temp == (2.0, 0.5, 0.999995)


def test_base_config_is_merged_section_by_section(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "task: ctc\noptim:\n  lr: 1.0e-3\n  clip_grad_norm: 5.0\ntrainer:\n  max_updates: 10\n"
    )
    (tmp_path / "b.yaml").write_text("base: a.yaml\noptim:\n  lr: 2.0e-4\n")
    cfg = load_config(tmp_path / "b.yaml", ["trainer.max_updates=7"])
    assert cfg.task == "ctc" and cfg.optim.lr == 2e-4 and cfg.optim.clip_grad_norm == 5.0
    assert cfg.trainer.max_updates == 7
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    with pytest.raises(ValueError, match="loops back"):
        load_config(tmp_path / "b.yaml")


def test_to_yaml_replaces_the_file_atomically(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    load_config(None, ["optim.lr=1e-4"]).to_yaml(path)
    before = path.read_text()
    assert load_config(path).optim.lr == 1e-4

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the write fails before the rename
    with pytest.raises(OSError, match="No space"):
        load_config(None, ["optim.lr=2e-4"]).to_yaml(path)
    monkeypatch.undo()
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
