"""Transformer encoder: attention vs torch.nn.MultiheadAttention, position conv, LayerDrop."""

import pytest
import torch
import torch.nn.functional as F

from hourglass_w2v2.models.encoder import (
    PositionalConvEmbedding,
    SelfAttention,
    TransformerEncoder,
    fft_size,
    grouped_conv1d_fft,
)


def test_self_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    dim, heads = 32, 4
    ours = SelfAttention(dim, heads).eval()
    ref = torch.nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv_proj.weight)  # both stack q, k, v
        ref.in_proj_bias.copy_(ours.qkv_proj.bias)
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)
    x = torch.randn(2, 7, dim)
    pad = torch.tensor([[False] * 7, [False] * 5 + [True] * 2])
    expected, _ = ref(x, x, x, key_padding_mask=pad, need_weights=False)
    got = ours(x, (~pad)[:, None, None, :])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "batch,channels,length,kernel,groups",
    [(2, 32, 50, 16, 4), (3, 64, 251, 128, 16), (1, 16, 10, 7, 2), (2, 12, 3, 128, 3)],
)
def test_fft_grouped_conv_equals_conv1d(batch, channels, length, kernel, groups):
    # the reference is F.conv1d in float64; the FFT path works in fp32
    torch.manual_seed(0)
    x = torch.randn(batch, channels, length, dtype=torch.float64)
    w = torch.randn(channels, channels // groups, kernel, dtype=torch.float64)
    b = torch.randn(channels, dtype=torch.float64)
    expected = F.conv1d(x, w, b, padding=kernel // 2, groups=groups)[..., :length]
    got = grouped_conv1d_fft(x.float(), w.float(), b.float(), kernel // 2, groups)
    assert got.shape == (batch, channels, length)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)


def test_fft_size_is_the_smallest_5_smooth_size():
    smooth = [n for n in range(1, 2100) if _is_5_smooth(n)]
    for n in (1, 2, 7, 100, 377, 513, 1025, 1999):
        assert fft_size(n) == min(m for m in smooth if m >= n)


def _is_5_smooth(n):
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def test_pos_conv_fft_and_conv_agree_in_value_and_gradient():
    torch.manual_seed(0)
    fft = PositionalConvEmbedding(32, kernel_size=16, groups=4, impl="fft")
    conv = PositionalConvEmbedding(32, kernel_size=16, groups=4, impl="conv")
    conv.load_state_dict(fft.state_dict())
    x = torch.randn(2, 40, 32)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = fft(x1), conv(x2)
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    for (name, p1), p2 in zip(fft.named_parameters(), conv.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_pos_conv_rejects_an_unknown_impl():
    with pytest.raises(ValueError, match="auto\\|conv\\|fft"):
        PositionalConvEmbedding(16, 4, 2, impl="winograd")


@pytest.mark.parametrize("impl", ["conv", "fft"])
def test_even_kernel_keeps_length_and_is_centred(impl):
    torch.manual_seed(0)
    pos = PositionalConvEmbedding(16, kernel_size=4, groups=2, impl=impl)
    assert pos(torch.randn(1, 9, 16)).shape == (1, 9, 16)
    # the output at t depends on inputs t-2 .. t+1 (padding 2, last frame dropped)
    x = torch.zeros(1, 9, 16, requires_grad=True)
    pos(x)[0, 4].sum().backward()
    size = x.grad[0].abs().sum(-1)
    touched = (size > 1e-5 * size.max()).nonzero().flatten().tolist()  # FFT rounding: ~1e-7
    assert touched == [2, 3, 4, 5]


def _encoder(layerdrop):
    return TransformerEncoder(
        dim=16,
        num_layers=6,
        ffn_dim=32,
        num_heads=2,
        conv_pos=4,
        conv_pos_groups=2,
        layerdrop=layerdrop,
    )


def _dropped_layers(enc, shard_seed):
    torch.manual_seed(shard_seed)  # what the trainer does before every micro-batch
    return enc._drop_decisions()


def test_layerdrop_depends_only_on_the_shard_seed():
    # the same shard (same seed) drops the same layers in any process, whatever ran before it:
    # 2 GPUs x accum 1 and 1 GPU x accum 2 see the same shards, so they drop the same layers
    gpu0, gpu1 = _encoder(0.5).train(), _encoder(0.5).train()
    a = [_dropped_layers(gpu0, s) for s in range(20)]
    for _ in range(3):
        gpu1._drop_decisions()  # earlier micro-batches of an accumulating process
    b = [_dropped_layers(gpu1, s) for s in range(20)]
    assert a == b
    assert len({tuple(d) for d in a}) > 5  # it does change from shard to shard
    frac = sum(sum(d) for d in a) / (20 * 6)
    assert 0.3 < frac < 0.7


def test_dropped_layers_still_get_zero_gradients():
    enc = _encoder(0.5).train()
    draw, recorded = enc._drop_decisions, []
    enc._drop_decisions = lambda: recorded.append(draw()) or recorded[-1]
    x = torch.randn(2, 5, 16)
    for seed in range(20):  # the first seed that drops some layers but not all
        enc.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        enc(x).sum().backward()
        if any(recorded[-1]) and not all(recorded[-1]):
            break
    drops = recorded[-1]
    assert any(drops) and not all(drops)
    for name, p in enc.named_parameters():
        assert p.grad is not None, name  # DDP needs every parameter in the graph
    for dropped, layer in zip(drops, enc.layers, strict=True):
        grad = sum(float(p.grad.abs().sum()) for p in layer.parameters())
        assert (grad == 0) == dropped


def test_eval_mode_never_drops():
    enc = _encoder(0.99).eval()
    assert _dropped_layers(enc, 1) == [False] * 6
    assert _dropped_layers(enc.train(), 1) == [True] * 6
