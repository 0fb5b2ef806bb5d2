"""Hourglass: factor 1 is vanilla, shapes/masks for odd lengths, padding never leaks."""

import pytest
import torch

from hourglass_w2v2.models.encoder import TransformerEncoder
from hourglass_w2v2.models.hourglass import Shorten, Upsample


def _encoder(hourglass=None, layer_norm_first=False, shorten="avg", upsample="repeat", layers=4):
    return TransformerEncoder(
        dim=16,
        num_layers=layers,
        ffn_dim=32,
        num_heads=2,
        conv_pos=4,
        conv_pos_groups=2,
        layer_norm_first=layer_norm_first,
        hourglass=hourglass,
        shorten=shorten,
        upsample=upsample,
    ).eval()


@pytest.mark.parametrize("layer_norm_first", [False, True])
def test_factor_one_is_the_vanilla_encoder_bit_for_bit(layer_norm_first):
    torch.manual_seed(0)
    vanilla = _encoder(None, layer_norm_first)
    hourglass = _encoder((1, (2, 1), 1), layer_norm_first)
    assert hourglass.state_dict().keys() == vanilla.state_dict().keys()
    hourglass.load_state_dict(vanilla.state_dict())
    x = torch.randn(2, 13, 16)
    pad = torch.arange(13)[None] >= torch.tensor([13, 9])[:, None]
    assert torch.equal(hourglass(x, pad), vanilla(x, pad))
    assert torch.equal(hourglass(x), vanilla(x))


@pytest.mark.parametrize("mode", ["avg", "linear"])
def test_shortened_padding_mask_keeps_partly_valid_frames(mode):
    pad = torch.tensor([[False] * 5 + [True] * 6, [False] * 11])
    _, short = Shorten(2, 4, mode)(torch.randn(2, 11, 2), pad)
    # frames 0-3 valid, 4-7 has one valid frame (4), 8-10 (+1 pad) all pad
    assert short.tolist() == [[False, False, True], [False, False, False]]


def test_avg_shortening_is_the_mean_of_valid_frames():
    x = torch.arange(7, dtype=torch.float32).view(1, 7, 1).expand(1, 7, 2).contiguous()
    pad = torch.tensor([[False] * 5 + [True] * 2])
    short, short_pad = Shorten(2, 3, "avg")(x, pad)
    assert short[0, :2, 0].tolist() == [1.0, 3.5]  # mean(0,1,2), mean(3,4): 5 is padding
    assert short_pad.tolist() == [[False, False, True]]
    # without a mask the tail (6) is padded to a full window by zeros that are not counted
    short, short_pad = Shorten(2, 3, "avg")(x, None)
    assert short[0, :, 0].tolist() == [1.0, 4.0, 6.0] and short_pad is None


def test_upsample_repeats_and_crops():
    y = torch.tensor([[[1.0], [2.0], [3.0]]])
    assert Upsample(1, 3, "repeat")(y, 7)[0, :, 0].tolist() == [1, 1, 1, 2, 2, 2, 3]
    assert Upsample(1, 3, "linear")(y, 8).shape == (1, 8, 1)


@pytest.mark.parametrize("length", [13, 16, 17, 1])
@pytest.mark.parametrize("spec", [(1, (2, 4), 1), (1, ((1, (1, 2), 0), 3), 1)])
def test_shapes_for_odd_lengths_and_nested_levels(length, spec):
    enc = _encoder(spec)
    outs = []
    y = enc(torch.randn(2, length, 16), None, outs)
    assert y.shape == (2, length, 16)
    assert len(outs) == 4
    assert outs[0].shape[1] == length  # pre layer at full rate
    assert outs[1].shape[1] == -(-length // (4 if spec[1][1] == 4 else 3))


@pytest.mark.parametrize("layer_norm_first", [False, True])
@pytest.mark.parametrize("shorten,upsample", [("avg", "repeat"), ("linear", "linear")])
@pytest.mark.parametrize("spec", [(1, (2, 4), 1), (1, ((1, (1, 2), 0), 3), 1)])
def test_padding_never_influences_valid_outputs(layer_norm_first, shorten, upsample, spec):
    torch.manual_seed(0)
    enc = _encoder(spec, layer_norm_first, shorten, upsample)
    x = torch.randn(2, 19, 16)
    lengths = torch.tensor([19, 10])  # 10 is not a multiple of 4 or 3 or 6
    pad = torch.arange(19)[None] >= lengths[:, None]
    y = enc(x, pad)
    x2 = x.clone()
    x2[1, 10:] = torch.randn(9, 16) * 100
    y2 = enc(x2, pad)
    torch.testing.assert_close(y2[1, :10], y[1, :10], atol=1e-5, rtol=0)
    # and it is the output the utterance gets alone
    alone = enc(x[1:, :10])
    torch.testing.assert_close(y[1, :10], alone[0], atol=1e-5, rtol=1e-5)


def test_hourglass_changes_the_function_and_trains():
    torch.manual_seed(0)
    enc = _encoder((1, (2, 2), 1), shorten="linear", upsample="linear").train()
    x = torch.randn(2, 10, 16)
    enc(x).pow(2).mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
