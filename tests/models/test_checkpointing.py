"""Activation checkpointing (``checkpoint_extractor``, ``checkpoint_layers``): the same gradients
as without it, dropout included, and fewer bytes saved for backward."""

import pytest
import torch

from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.models import encoder as encoder_module
from hourglass_w2v2.models import extractor as extractor_module
from hourglass_w2v2.models.encoder import padded_rfft
from hourglass_w2v2.models.extractor import FeatureExtractor
from hourglass_w2v2.models.memory import saved_activation_bytes

SMALL = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2
DROPOUT_ON = dict(
    dropout=0.1, attention_dropout=0.1, activation_dropout=0.1, dropout_input=0.1, layerdrop=0.0
)


def extractor_grads(checkpoint: bool, norm: str, lengths: torch.Tensor | None):
    torch.manual_seed(0)
    fe = FeatureExtractor(SMALL, norm, checkpoint=checkpoint)
    wav = torch.randn(2, 4000, generator=torch.Generator().manual_seed(1), requires_grad=True)
    feats, _ = fe(wav, lengths)
    (feats * torch.linspace(-1, 1, feats.shape[-1])).pow(2).sum().backward()
    return feats.detach(), wav.grad, {n: p.grad for n, p in fe.named_parameters()}


@pytest.mark.parametrize(
    "norm,lengths",
    [("group_norm", None), ("group_norm", torch.tensor([4000, 2700])), ("layer_norm", None)],
)
def test_extractor_checkpointing_gives_the_same_output_and_gradients(norm, lengths):
    out0, wav_grad0, grads0 = extractor_grads(False, norm, lengths)
    out1, wav_grad1, grads1 = extractor_grads(True, norm, lengths)
    torch.testing.assert_close(out1, out0, rtol=0, atol=0)
    torch.testing.assert_close(wav_grad1, wav_grad0, rtol=0, atol=1e-6)
    num_norms = 1 if norm == "group_norm" else 7
    assert grads1.keys() == grads0.keys() and len(grads0) == 7 + 2 * num_norms  # conv, norm
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], rtol=0, atol=1e-6, msg=name)


def test_extractor_checkpointing_keeps_only_the_multichannel_conv_outputs():
    torch.manual_seed(0)
    wav = torch.randn(1, 16000)
    frames = [3199, 1599, 799, 399, 199, 99, 49]  # each conv layer's output length for 1 s
    measured = {}
    for checkpoint in (False, True):
        fe = FeatureExtractor(SMALL, "group_norm", checkpoint=checkpoint)

        def step(fe=fe):
            fe(wav)[0].pow(2).sum().backward()

        measured[checkpoint] = saved_activation_bytes(step, fe)
    fp32 = 4 * 32
    # without: the waveform, every conv and GELU output, the group norm's output and statistics
    assert measured[False] == 4 * 16000 + fp32 * (2 * sum(frames) + frames[0]) + 2 * fp32
    # with: the waveform, the outputs of the convs past the first, the output the loss squares
    assert measured[True] == 4 * 16000 + fp32 * (sum(frames[1:]) + frames[-1])
    assert measured[True] < 0.25 * measured[False]


def test_extractor_checkpointing_is_a_no_op_without_gradients(monkeypatch):
    calls = []
    real = extractor_module.checkpoint
    monkeypatch.setattr(
        extractor_module, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    cfg = ModelConfig.preset("tiny", checkpoint_extractor=True, feature_grad_mult=0.1)
    model = build_model(cfg, task="ctc", vocab_size=5).train()
    wav = torch.randn(1, 8000)
    model.encode(wav).sum().backward()
    assert len(calls) == 6  # trained extractor: one region per multichannel conv
    # fine-tuning freezes the extractor: it runs without autograd, nothing to recompute
    model.freeze_feature_extractor()
    fe = model.feature_extractor
    assert saved_activation_bytes(lambda: fe(wav), fe) == 0
    model.encode(wav).sum().backward()
    with torch.no_grad():
        model.encode(wav)
    assert len(calls) == 6
    # eval mode (export, scoring) runs the plain layers even with gradients on
    model = build_model(cfg.replace(checkpoint_layers=True), task="ctc", vocab_size=5).eval()
    monkeypatch.setattr(encoder_module, "checkpoint", lambda *a, **k: calls.append(1))
    model.encode(wav).sum().backward()
    assert len(calls) == 6


def model_grads(preset: str, **overrides):
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset(preset, num_negatives=10, **DROPOUT_ON, **overrides))
    wav = torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    padding = torch.zeros(2, 16000, dtype=torch.bool)
    padding[1, 11000:] = True
    torch.manual_seed(1)  # masks, negatives and dropout: the same draws in every run
    box = {}

    def step():
        box["loss"] = model(wav, padding).loss
        box["loss"].backward()

    nbytes = saved_activation_bytes(step, model)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return box["loss"].detach(), grads, nbytes


@pytest.mark.parametrize("preset", ["tiny", "tiny-hourglass"])
def test_layer_and_extractor_checkpointing_replay_dropout_exactly(preset):
    loss0, grads0, bytes0 = model_grads(preset)
    loss1, grads1, bytes1 = model_grads(preset, checkpoint_layers=True)
    loss2, grads2, bytes2 = model_grads(
        preset, checkpoint_layers=True, checkpoint_extractor=True, feature_grad_mult=0.1
    )
    loss3, grads3, _ = model_grads(preset, feature_grad_mult=0.1)
    assert loss1 == loss0 and loss2 == loss3
    assert grads1.keys() == grads0.keys() and grads2.keys() == grads0.keys()
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(grads2[name], grads3[name], rtol=0, atol=1e-6, msg=name)
    assert bytes1 < 0.8 * bytes0 and bytes2 < 0.5 * bytes1


def test_checkpoint_options_are_off_by_default():
    cfg = ModelConfig()
    assert cfg.checkpoint_extractor is False and cfg.checkpoint_layers is False
    model = build_model(ModelConfig.preset("tiny"))
    assert not model.feature_extractor.checkpoint and not model.encoder.checkpoint_layers


@pytest.mark.parametrize("n", [120, 121])
def test_padded_rfft_saves_nothing_and_has_torchs_gradient(n):
    x = torch.randn(6, 4, 40, dtype=torch.float64, requires_grad=True)
    g = torch.randn(6, 4, n // 2 + 1, dtype=torch.complex128)
    want = torch.autograd.grad(torch.fft.rfft(x, n=n), x, g)[0]
    nbytes = saved_activation_bytes(lambda: padded_rfft(x, n), torch.nn.Linear(1, 1))
    got = torch.autograd.grad(padded_rfft(x, n), x, g)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(padded_rfft(x, n), torch.fft.rfft(x, n=n), rtol=0, atol=0)
    assert nbytes == 0  # torch.fft.rfft keeps the zero-padded (6, 4, n) input for backward


def test_layer_checkpointing_keeps_little_more_than_each_layers_input():
    cfg = ModelConfig.preset("tiny", **DROPOUT_ON)
    measured = {}
    for layers in (False, True):
        encoder = build_model(cfg.replace(checkpoint_layers=layers)).encoder
        x = torch.randn(1, 500, 256, requires_grad=True)

        def step(encoder=encoder, x=x):
            encoder(x).sum().backward()

        measured[layers] = saved_activation_bytes(step, encoder)
    # 7 (T, C) tensors, the position conv's and the 4 layers' inputs among them, and one
    # norm's per-frame mean and inverse deviation
    assert measured[True] == 7 * 500 * 256 * 4 + 2 * 500 * 4
    # without: every layer's activations and the position conv's weight spectrum
    assert measured[False] > 25 * measured[True]
