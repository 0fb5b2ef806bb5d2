"""Gumbel product quantizer: perplexity definitions, gradients, temperature schedule."""

import math

import pytest
import torch

from hourglass_w2v2.models import ModelConfig
from hourglass_w2v2.models.quantizer import GumbelVectorQuantizer, perplexity


def test_perplexity_of_uniform_and_one_hot():
    groups, entries = 2, 320
    assert math.isclose(
        perplexity(torch.full((groups, entries), 1 / entries)).item(),
        groups * entries,
        rel_tol=1e-4,
    )
    one_hot = torch.zeros(groups, entries)
    one_hot[:, 3] = 1
    assert math.isclose(perplexity(one_hot).item(), groups, rel_tol=1e-4)


def test_uniform_logits_give_maximal_prob_perplexity():
    q = GumbelVectorQuantizer(8, num_vars=16, groups=2, vq_dim=8)
    with torch.no_grad():
        q.weight_proj.weight.zero_()
    out = q(torch.randn(5, 8))
    assert math.isclose(out.prob_perplexity.item(), 32, rel_tol=1e-4)
    assert out.num_vars == 32 and out.x.shape == (5, 8)


def test_gradients_reach_codebook_and_projection():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(8, num_vars=16, groups=2, vq_dim=8).train()
    x = torch.randn(40, 8, requires_grad=True)
    out = q(x)
    (out.x.pow(2).sum() - out.prob_perplexity).backward()
    assert q.codebook.grad.abs().sum() > 0
    assert q.weight_proj.weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_eval_picks_argmax_codes():
    torch.manual_seed(0)
    q = GumbelVectorQuantizer(8, num_vars=16, groups=2, vq_dim=8).eval()
    x = torch.randn(3, 8)
    out = q(x)
    logits = q.weight_proj(x).view(3, 2, 16)
    codebook = q.codebook.view(2, 16, 4)
    expected = torch.cat([codebook[g, logits[:, g].argmax(-1)] for g in range(2)], dim=-1)
    torch.testing.assert_close(out.x, expected)


def test_temperature_schedule():
    q = GumbelVectorQuantizer(8, 16, 2, 8, temperature=(2.0, 0.5, 0.999995))
    q.set_num_updates(0)
    assert q.temperature == 2.0
    q.set_num_updates(100_000)
    assert math.isclose(q.temperature, 2.0 * 0.999995**100_000)
    q.set_num_updates(10_000_000)
    assert q.temperature == 0.5


def test_codebook_init_uniform_is_fairseqs_and_centered_removes_the_shared_mean():
    import torch.nn.functional as F

    torch.manual_seed(0)
    fairseq = GumbelVectorQuantizer(64, 64, 2, 128).codebook.detach()
    centered = GumbelVectorQuantizer(64, 64, 2, 128, codebook_init="centered").codebook.detach()
    assert 0.0 <= float(fairseq.min()) and float(fairseq.max()) < 1.0  # U[0, 1)
    assert -0.5 <= float(centered.min()) and float(centered.max()) < 0.5
    assert abs(float(fairseq.std()) - float(centered.std())) < 0.01  # same spread (1/sqrt(12))

    def mean_cosine(cb):
        v = F.normalize(cb.reshape(-1, cb.shape[-1]), dim=-1)
        return float((v @ v.T).mean())

    assert mean_cosine(fairseq) > 0.7  # every pair of entries points the same way
    assert abs(mean_cosine(centered)) < 0.05
    with pytest.raises(ValueError, match="codebook_init"):
        ModelConfig.preset("tiny", codebook_init="centred")


def test_annealing_does_not_recompile_a_compiled_quantizer():
    """The temperature reaches forward as a tensor: torch.compile guards on a float
    attribute's value and recompiles when the anneal changes it."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    q = GumbelVectorQuantizer(16, num_vars=8, groups=2, vq_dim=8).train()
    counter = CompileCounter()
    compiled = torch.compile(q, backend=counter)
    x = torch.randn(5, 16)
    for update in range(4):
        q.set_num_updates(update * 1000)
        torch.manual_seed(0)
        got = compiled(x).x
        torch.manual_seed(0)
        assert torch.equal(got, q(x).x)  # the same draw as eager at this temperature
    assert q.tau.item() < 2.0 and counter.frame_count == 1
