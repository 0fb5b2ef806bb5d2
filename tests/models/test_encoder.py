"""Transformer encoder: attention vs torch.nn.MultiheadAttention, position conv, LayerDrop."""

import torch

from hourglass_w2v2.models.encoder import PositionalConvEmbedding, SelfAttention, TransformerEncoder


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


def test_even_kernel_keeps_length_and_is_centred():
    torch.manual_seed(0)
    pos = PositionalConvEmbedding(16, kernel_size=4, groups=2)
    assert pos(torch.randn(1, 9, 16)).shape == (1, 9, 16)
    # the output at t depends on inputs t-2 .. t+1 (padding 2, last frame dropped)
    x = torch.zeros(1, 9, 16, requires_grad=True)
    pos(x)[0, 4].sum().backward()
    touched = (x.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
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


def _dropped_layers(enc, update):
    enc.set_num_updates(update)
    return enc._drop_decisions()


def test_layerdrop_is_seeded_by_update_and_identical_across_ranks():
    rank0, rank1 = _encoder(0.5).train(), _encoder(0.5).train()
    torch.manual_seed(0)  # different global RNG state on each "rank" must not matter
    a = [_dropped_layers(rank0, u) for u in range(20)]
    torch.manual_seed(1)
    b = [_dropped_layers(rank1, u) for u in range(20)]
    assert a == b
    assert len({tuple(d) for d in a}) > 5  # it does change from update to update
    frac = sum(sum(d) for d in a) / (20 * 6)
    assert 0.3 < frac < 0.7


def test_dropped_layers_still_get_zero_gradients():
    torch.manual_seed(0)
    enc = _encoder(0.5).train()
    drops = _dropped_layers(enc, 3)
    assert any(drops) and not all(drops)
    enc.set_num_updates(4)
    enc.set_num_updates(3)  # a new update restarts the per-update draw: same decisions again
    enc(torch.randn(2, 5, 16)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name  # DDP needs every parameter in the graph
    for dropped, layer in zip(drops, enc.layers, strict=True):
        grad = sum(float(p.grad.abs().sum()) for p in layer.parameters())
        assert (grad == 0) == dropped


def test_eval_mode_never_drops():
    enc = _encoder(0.99).eval()
    assert _dropped_layers(enc, 1) == [False] * 6
