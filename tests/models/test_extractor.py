"""Feature extractor: lengths, masked group norm, gradient multiplier."""

import pytest
import torch

from hourglass_w2v2.models.config import W2V2_CONV_LAYERS
from hourglass_w2v2.models.extractor import FeatureExtractor, GradMultiply, blocked_group_norm

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
