"""Weight-decay groups: which parameters decay under each ``optim.weight_decay_exempt``."""

from __future__ import annotations

import pytest
import torch

from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.training.config import load_config
from hourglass_w2v2.training.optim import build_optimizer, param_groups

# every parameter of the tiny pretraining model outside the repeated conv / transformer layers,
# sorted by hand into decayed or not under the "bias_norm" rule
BIAS_NORM_DECAYED = [
    "feature_extractor.conv_layers.0.conv.weight",
    "feature_proj.weight",
    "encoder.pos_conv.conv.parametrizations.weight.original0",  # weight-norm gain, 3-D
    "encoder.pos_conv.conv.parametrizations.weight.original1",
    "encoder.layers.0.self_attn.qkv_proj.weight",
    "encoder.layers.0.self_attn.out_proj.weight",
    "encoder.layers.0.fc1.weight",
    "encoder.layers.0.fc2.weight",
    "quantizer.codebook",  # 3-D: decayed, as in fairseq
    "quantizer.weight_proj.weight",
    "project_q.weight",
    "final_proj.weight",
]
BIAS_NORM_EXEMPT = [
    "mask_emb",
    "feature_extractor.conv_layers.0.norm.weight",
    "feature_extractor.conv_layers.0.norm.bias",
    "feature_norm.weight",
    "feature_norm.bias",
    "feature_proj.bias",
    "encoder.pos_conv.conv.bias",
    "encoder.layer_norm.weight",
    "encoder.layer_norm.bias",
    "encoder.layers.0.self_attn.qkv_proj.bias",
    "encoder.layers.0.self_attn.out_proj.bias",
    "encoder.layers.0.self_attn_layer_norm.weight",
    "encoder.layers.0.self_attn_layer_norm.bias",
    "encoder.layers.0.fc1.bias",
    "encoder.layers.0.fc2.bias",
    "encoder.layers.0.final_layer_norm.weight",
    "encoder.layers.0.final_layer_norm.bias",
    "quantizer.weight_proj.bias",
    "project_q.bias",
    "final_proj.bias",
]


def _decay_by_name(model: torch.nn.Module, groups: list[dict]) -> dict[str, float]:
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    return {n: wd_of[id(p)] for n, p in model.named_parameters()}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(ModelConfig.preset("tiny"), "pretrain")


def test_bias_norm_exempts_biases_norms_and_mask_embedding_but_not_the_codebook(model):
    wd = _decay_by_name(model, param_groups(model, 0.01, 1e-3, exempt="bias_norm"))
    assert {n: wd[n] for n in BIAS_NORM_DECAYED} == dict.fromkeys(BIAS_NORM_DECAYED, 0.01)
    assert {n: wd[n] for n in BIAS_NORM_EXEMPT} == dict.fromkeys(BIAS_NORM_EXEMPT, 0.0)


def test_none_decays_every_parameter_as_fairseq_adam(model):
    groups = param_groups(model, 0.01, 1e-3, exempt="none")
    wd = _decay_by_name(model, groups)
    assert set(wd.values()) == {0.01}
    assert len(wd) == sum(1 for _ in model.parameters())
    assert len(groups) == 1  # one group: the same update as fairseq's single-group Adam


def test_config_key_reaches_the_optimizer(model):
    for exempt, expected_mask_emb_wd in (("none", 0.01), ("bias_norm", 0.0)):
        cfg = load_config(None, ["optim.optimizer=adamw", f"optim.weight_decay_exempt={exempt}"])
        opt = build_optimizer(model, cfg.optim)
        assert _decay_by_name(model, opt.param_groups)["mask_emb"] == expected_mask_emb_wd


def test_unknown_setting_is_named(model):
    cfg = load_config(None, ["optim.weight_decay_exempt=biases"])
    with pytest.raises(ValueError, match=r"optim\.weight_decay_exempt.*'biases'.*none.*bias_norm"):
        build_optimizer(model, cfg.optim)


def test_synth_keeps_bias_norm_and_librispeech_base_follows_fairseq():
    from pathlib import Path

    egs = Path(__file__).resolve().parents[2] / "egs"
    for path in sorted((egs / "synth" / "SSL" / "conf").glob("*.yaml")):
        assert load_config(path).optim.weight_decay_exempt == "bias_norm", path.name
    for path in sorted((egs / "librispeech" / "SSL" / "conf").glob("*.yaml")):
        assert load_config(path).optim.weight_decay_exempt == "none", path.name


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_fused_cpu_takes_the_fused_kernel_and_makes_the_same_updates(model, optimizer):
    """``optim.fused_cpu``: torch's fused kernel on CPU, the same parameters after 5 updates as
    the default per-parameter loop (within float32 rounding)."""
    import copy

    finals = {}
    for fused in (False, True):
        m = copy.deepcopy(model)
        cfg = load_config(None, [f"optim.optimizer={optimizer}", f"optim.fused_cpu={fused}"])
        opt = build_optimizer(m, cfg.optim)
        assert bool(opt.defaults["fused"]) is fused
        gen = torch.Generator().manual_seed(0)
        for _ in range(5):
            for p in m.parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        finals[fused] = [p.detach().clone() for p in m.parameters()]
    moved = max(
        (a - b).abs().max().item() for a, b in zip(finals[False], model.parameters(), strict=True)
    )
    assert moved > 1e-3  # the updates did move the weights
    for a, b in zip(finals[False], finals[True], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
