"""Feature extractor: lengths, masked group norm, gradient multiplier, the exported graphs'
group norm and the polyphase input gradient."""

import pytest
import torch

from hourglass_w2v2.models.config import W2V2_CONV_LAYERS
from hourglass_w2v2.models.extractor import (
    FeatureExtractor,
    GradMultiply,
    blocked_group_norm,
    polyphase_input_grad,
)
from hourglass_w2v2.training.trainer import enable_polyphase_backward

SMALL = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2


def test_output_lengths_match_the_convolutions():
    fe = FeatureExtractor(SMALL, "layer_norm")
    for n in [400, 401, 719, 720, 1000, 16000, 16321]:
        feats, lengths = fe(torch.randn(1, n), torch.tensor([n]))
        assert feats.shape[1] == lengths.item() == fe.output_lengths(torch.tensor([n])).item()
    # the Base extractor: 400-sample receptive field, 320-sample stride -> 49 frames per second
    base = FeatureExtractor(W2V2_CONV_LAYERS)
    assert base.output_lengths(torch.tensor([16000, 400, 399])).tolist() == [49, 1, 0]


def test_group_norm_is_masked_over_padding():
    torch.manual_seed(0)
    fe = FeatureExtractor(SMALL, "group_norm").eval()
    wav = torch.randn(2, 8000)
    wav[1, 5000:] = 100.0  # loud padding: it would shift the group-norm statistics if used
    lengths = torch.tensor([8000, 5000])
    feats, out_len = fe(wav, lengths)
    alone, _ = fe(wav[1:, :5000], None)
    n = out_len[1].item()
    assert n == alone.shape[1]
    torch.testing.assert_close(feats[1, :n], alone[0], atol=1e-5, rtol=0)
    # and the unmasked path (what fairseq/torchaudio do) would indeed leak
    leaky, _ = fe(wav, None)
    assert (leaky[1, :n] - alone[0]).abs().max() > 0.1 * alone.abs().max()


def test_grad_multiply_scales_gradient():
    x = torch.randn(3, requires_grad=True)
    GradMultiply.apply(x, 0.1).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.1))


@pytest.mark.parametrize("frames", [1, 255, 256, 257, 100_000])
def test_blocked_group_norm_equals_a_float64_group_norm(frames):
    """The exported graphs' group norm (block sums in float32, their total in float64) against
    torch's group norm in float64, on channels with offsets up to 5x their spread and lengths
    that are not whole blocks."""
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(8, 8)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, frames) * torch.rand(1, 8, 1) * 3 + torch.randn(1, 8, 1) * 5
    ref = torch.nn.functional.group_norm(
        x.double(), 8, norm.weight.double(), norm.bias.double(), norm.eps
    )
    got = blocked_group_norm(x, norm)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert (got.double() - ref).abs().max().item() < 2e-5  # torch's own float32: 1e-6 to 1e-4


@pytest.mark.parametrize(
    "channels, length, kernel, stride",
    [(8, 1000, 3, 2), (8, 1001, 3, 2), (8, 997, 2, 2), (4, 2003, 10, 5), (8, 50, 4, 3)],
)
def test_polyphase_input_grad_equals_the_transposed_convolution(channels, length, kernel, stride):
    torch.manual_seed(0)
    x = torch.randn(2, channels, length, dtype=torch.float64)
    w = torch.randn(6, channels, kernel, dtype=torch.float64)
    grad = torch.randn_like(torch.nn.functional.conv1d(x, w, stride=stride))
    ref = torch.ops.aten.convolution_backward(
        grad, x, w, None, [stride], [0], [1], False, [0], 1, [True, False, False]
    )[0]
    got = polyphase_input_grad(grad, w, stride, length)
    assert got.shape == x.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["group_norm", "layer_norm"])
def test_polyphase_backward_gives_the_extractors_gradients(mode):
    """Switched on by trainer.polyphase_conv_backward: the same output and gradients (float32
    sums in another order) for inputs long enough to take it (2,000+ frames after a conv)."""
    torch.manual_seed(0)
    ref = FeatureExtractor(SMALL, mode, conv_bias=mode == "layer_norm")
    fast = FeatureExtractor(SMALL, mode, conv_bias=mode == "layer_norm")
    fast.load_state_dict(ref.state_dict())
    model = torch.nn.Module()
    model.fe = fast
    assert enable_polyphase_backward(model) == len(SMALL)
    wav = torch.randn(2, 48000)
    target = torch.randn(2, fast.output_lengths(torch.tensor([48000])).item(), 32)
    grads = []
    for fe in (ref, fast):
        feats, _ = fe(wav, None)
        ((feats - target) ** 2).mean().backward()
        grads.append([p.grad for p in fe.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    checkpointed = torch.nn.Module()
    checkpointed.fe = FeatureExtractor(SMALL, mode, checkpoint=True)
    assert enable_polyphase_backward(checkpointed) == 0  # its selective policy reads plain convs


def test_polyphase_backward_under_bf16_autocast():
    """trainer.precision=bf16 on CPU: the backward runs in the forward's dtype and returns
    float32 gradients for the float32 weights."""
    torch.manual_seed(0)
    ref, fast = FeatureExtractor(SMALL, "group_norm"), FeatureExtractor(SMALL, "group_norm")
    fast.load_state_dict(ref.state_dict())
    for block in fast.conv_layers:
        block.polyphase_backward = True
    wav = torch.randn(2, 48000)
    grads = []
    for fe in (ref, fast):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            feats, _ = fe(wav, None)
        feats.float().pow(2).mean().backward()
        grads.append([p.grad for p in fe.parameters()])
    for a, b in zip(*grads, strict=True):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b, a, rtol=2e-2, atol=1e-4)
