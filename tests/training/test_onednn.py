"""trainer.onednn_linear: linear layers on oneDNN's fp32 GEMM compute what nn.Linear computes
(checked against float64), keep the state dict, and are only switched on where oneDNN computes
fp32 matmuls in fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.onednn import (
    OneDnnLinear,
    enable_onednn_linear,
    onednn_gemm_is_fp32,
)
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.trainer import Trainer

FP32 = onednn_gemm_is_fp32()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(48, 96), nn.GELU(), nn.Linear(96, 32, bias=False))


def test_enable_switches_every_linear_only_where_onednn_keeps_fp32():
    net = _net()
    keys = list(net.state_dict())
    n = enable_onednn_linear(net)
    switched = [type(m) is OneDnnLinear for m in net if isinstance(m, nn.Linear)]
    assert (n, switched) == ((2, [True, True]) if FP32 else (0, [False, False]))
    assert list(net.state_dict()) == keys


def test_outputs_and_gradients_are_fp32_exact_against_float64():
    """Where the gate is closed (a CPU with AMX), it is right to be: OneDnnLinear would be off
    by more than fp32 rounding there; where it is open, OneDnnLinear is fp32-exact."""
    net = _net()
    ref = _net().double()
    for m in net:
        if isinstance(m, nn.Linear):
            m.__class__ = OneDnnLinear  # bypassing the gate, to check it
    x = torch.randn(3, 50, 48, requires_grad=True)
    xd = x.detach().double().requires_grad_()
    g = torch.randn(3, 50, 32)
    net(x).backward(g)
    out, out_ref = net(x), ref(xd)
    out_ref.backward(g.double())
    if not FP32:
        assert (out.double() - out_ref).abs().max() > 1e-5 * out_ref.abs().max()
        return
    assert (out.double() - out_ref).abs().max() <= 1e-5 * out_ref.abs().max()
    assert (x.grad.double() - xd.grad).abs().max() <= 1e-5 * xd.grad.abs().max()
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert (p.grad.double() - q.grad).abs().max() <= 1e-5 * q.grad.abs().max()
    with torch.no_grad():  # no gradients: plain nn.Linear, bit for bit
        plain = _net()
        assert torch.equal(net(x), plain(x))


def test_trainer_option_trains_the_same_curve(corpus, tmp_path, helpers):
    losses = {}
    for on in (False, True):
        d = helpers.tiny_pretrain_config(corpus, onednn_linear=on)
        cfg = ExperimentConfig.from_dict(d)
        Trainer(cfg, PretrainTask(cfg), tmp_path / str(on)).fit()
        losses[on] = [
            m["loss"] for _, m in sorted(helpers.read_metrics(tmp_path / str(on)).items())
        ]
    assert len(losses[True]) == 6
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
