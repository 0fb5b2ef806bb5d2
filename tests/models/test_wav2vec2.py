"""Pretraining and CTC models: outputs, InfoNCE against a loop reference, backbone loading,
DDP-friendliness, and overfitting one batch."""

import math

import pytest
import torch

from hourglass_w2v2.models import CtcOutput, ModelConfig, PretrainOutput, build_model
from hourglass_w2v2.models.wav2vec2 import _mean_pairwise_cosine, contrastive_logits


def _waves(batch=2, seconds=1.0, seed=0):
    """Chirps plus noise: structured enough for the contrastive task to be learnable."""
    gen = torch.Generator().manual_seed(seed)
    n = int(16000 * seconds)
    t = torch.arange(n) / 16000
    f0 = 100 + 300 * torch.rand(batch, 1, generator=gen)
    wav = torch.sin(2 * math.pi * f0 * t * (1 + 2 * t)) + 0.1 * torch.randn(batch, n, generator=gen)
    return wav


def test_pretrain_output_fields_and_padding():
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset("tiny"), task="pretrain").train()
    wav = _waves(3)
    pad = torch.zeros_like(wav, dtype=torch.bool)
    pad[1, 9000:] = True
    out = model(wav, pad)
    assert isinstance(out, PretrainOutput)
    for name in (
        "loss",
        "contrastive_loss",
        "diversity_loss",
        "feature_penalty",
        "accuracy",
        "code_perplexity",
        "prob_perplexity",
        "target_similarity",
    ):
        value = getattr(out, name)
        assert value.dim() == 0 and torch.isfinite(value), name
    assert out.num_masked == out.sample_size and out.num_masked % 3 == 0
    assert out.temperature == 2.0
    cfg = model.cfg
    expected = (
        out.contrastive_loss
        + cfg.diversity_weight * out.diversity_loss
        + cfg.feature_penalty_weight * out.feature_penalty
    )
    torch.testing.assert_close(out.loss.detach(), expected)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.set_num_updates(100_000)
    assert model(wav).temperature < 2.0


def test_contrastive_logits_match_a_loop_reference():
    torch.manual_seed(0)
    preds, targets = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    targets[1, 3] = targets[1, 0]  # a distractor equal to the positive must be ignored
    neg_idx = torch.randint(0, 4, (2, 5, 6))
    neg_idx = neg_idx + (neg_idx >= torch.arange(5)[None, :, None]).long()
    neg_idx[1, 0, 0] = 3
    logits = contrastive_logits(preds, targets, neg_idx, 0.1)
    for b in range(2):
        for m in range(5):
            cands = [targets[b, m]] + [targets[b, j] for j in neg_idx[b, m]]
            for c, cand in enumerate(cands):
                if c > 0 and torch.equal(cand, targets[b, m]):
                    assert logits[b, m, c] == float("-inf")
                else:
                    cos = (preds[b, m] @ cand) / (preds[b, m].norm() * cand.norm())
                    assert abs(logits[b, m, c] - cos / 0.1) < 1e-4
    assert logits[1, 0, 1] == float("-inf")

    # gradients equal those of the loop reference (torch ops per pair, autograd through them)
    preds.requires_grad_()
    targets.requires_grad_()
    ours = contrastive_logits(preds, targets, neg_idx, 0.1)
    finite = torch.isfinite(ours)
    g_ours = torch.autograd.grad(ours[finite].sum(), (preds, targets))
    ref = []
    for b in range(2):
        for m in range(5):
            for j in [m, *neg_idx[b, m].tolist()]:
                if j == m or not torch.equal(targets[b, j], targets[b, m]):
                    cos = torch.nn.functional.cosine_similarity(preds[b, m], targets[b, j], dim=0)
                    ref.append(cos / 0.1)
    g_ref = torch.autograd.grad(torch.stack(ref).sum(), (preds, targets))
    for a, r in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-4)


def test_target_similarity_matches_a_loop_reference():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5) + torch.tensor([2.0, 0, 0, 0, 0])  # a shared direction
    cos = torch.nn.functional.cosine_similarity
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j]
    ref = torch.stack(
        [torch.stack([cos(x[b, i], x[b, j], dim=0) for i, j in pairs]) for b in range(3)]
    ).mean()
    assert torch.allclose(_mean_pairwise_cosine(x), ref, atol=1e-6)
    assert 0.3 < float(ref) < 0.9
    same = torch.ones(2, 4, 5)
    assert torch.allclose(_mean_pairwise_cosine(same), torch.tensor(1.0))


def test_centred_codebook_gives_distinguishable_targets_at_init():
    sims = {}
    for init in ("uniform", "centered"):
        torch.manual_seed(0)
        model = build_model(ModelConfig.preset("tiny", codebook_init=init), task="pretrain")
        with torch.no_grad():
            sims[init] = float(model(_waves(2)).target_similarity)
    assert sims["uniform"] > 0.7 and sims["centered"] < sims["uniform"] - 0.3, sims


def test_ctc_model_masks_only_in_training_and_loads_backbone():
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny", mask_prob=0.5, mask_channel_prob=0.2)
    pre = build_model(cfg, "pretrain")
    ctc = build_model(cfg, "ctc", vocab_size=11)
    missing, unexpected = ctc.load_backbone({"module." + k: v for k, v in pre.state_dict().items()})
    assert sorted(missing) == ["ctc_head.bias", "ctc_head.weight"] and unexpected == []
    wav = _waves(2)
    pad = torch.zeros_like(wav, dtype=torch.bool)
    pad[0, 12000:] = True
    ctc.eval()
    out = ctc(wav, pad)
    assert isinstance(out, CtcOutput) and out.logits.shape == (2, 49, 11)
    assert out.lengths.tolist() == ctc.output_lengths(torch.tensor([12000, 16000])).tolist()
    assert out.padding_mask.sum(1).tolist() == [49 - out.lengths[0].item(), 0]
    torch.testing.assert_close(ctc(wav, pad).logits, out.logits)  # eval is deterministic
    torch.testing.assert_close(ctc.encode(wav, pad), pre.eval().encode(wav, pad))
    ctc.train()
    assert not torch.allclose(ctc(wav, pad).logits, out.logits)


def test_frozen_encoder_and_frozen_extractor():
    torch.manual_seed(0)
    ctc = build_model(ModelConfig.preset("tiny"), "ctc", vocab_size=5).train()
    ctc.freeze_feature_extractor()
    out = ctc(_waves(2), freeze_encoder=True)
    out.logits.sum().backward()
    assert ctc.ctc_head.weight.grad.abs().sum() > 0
    for name, p in ctc.named_parameters():
        if name.startswith("feature_extractor."):
            assert not p.requires_grad and p.grad is None
        elif not name.startswith("ctc_head."):
            # zero gradient, but present: DDP without find_unused_parameters stays in step
            assert p.grad is not None and p.grad.abs().sum() == 0, name


def test_layer_depths_follow_the_hourglass():
    # [1, ([1, (2, 2), 1], 2), 1] with linear resamplers: 6 layers, two levels, every
    # resampler takes the depth of the layer that reads its output
    cfg = ModelConfig.preset(
        "tiny", encoder_layers=6, hourglass=[1, [[1, [2, 2], 1], 2], 1], shorten="linear",
        upsample="linear",
    )
    for task, head in (("ctc", "ctc_head.weight"), ("pretrain", "final_proj.weight")):
        model = build_model(cfg, task, vocab_size=7)
        depth = {n: model.layer_depth(n) for n, _ in model.named_parameters()}
        assert depth[head] == 7 and depth["feature_extractor.conv_layers.0.conv.weight"] == 0
        assert depth["mask_emb"] == depth["feature_proj.weight"] == 0
        assert depth["encoder.pos_conv.conv.bias"] == depth["encoder.layer_norm.weight"] == 0
        assert [depth[f"encoder.layers.{i}.fc1.weight"] for i in range(6)] == [1, 2, 3, 4, 5, 6]
        # outer level: shortened after layer 0 (read by layer 1), upsampled before layer 5
        assert depth["encoder.shorteners.0.proj.weight"] == 2
        assert depth["encoder.upsamplers.0.proj.weight"] == 6
        # inner level: shortened after layer 1 (read by layer 2), upsampled before layer 4
        assert depth["encoder.shorteners.1.proj.weight"] == 3
        assert depth["encoder.upsamplers.1.proj.weight"] == 5
    pre_ln = build_model(ModelConfig.preset("tiny", layer_norm_first=True), "ctc", vocab_size=3)
    assert pre_ln.layer_depth("encoder.layer_norm.weight") == 5  # applied after the last layer


def test_reset_top_layers_reinitialises_only_those():
    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny-hourglass")
    pre = build_model(cfg, "pretrain")
    with torch.no_grad():  # a "trained" model: every weight far from its init
        for p in pre.parameters():
            p.add_(1.0)
    ctc = build_model(cfg, "ctc", vocab_size=9)
    ctc.load_backbone(pre.state_dict())
    ctc.reset_top_layers(1)
    trained, fresh = pre.state_dict(), ctc.state_dict()
    for name, value in fresh.items():
        if name.startswith("encoder.layers.3."):
            assert not torch.equal(value, trained[name]), name
        elif name in trained:
            assert torch.equal(value, trained[name]), name
    assert abs(fresh["encoder.layers.3.fc1.weight"].std().item() - 0.02) < 0.002
    assert fresh["encoder.layers.3.fc1.bias"].abs().max() == 0
    assert torch.equal(fresh["encoder.layers.3.final_layer_norm.weight"], torch.ones(256))
    with pytest.raises(ValueError, match="cannot reset 5 of 4"):
        ctc.reset_top_layers(5)


def test_build_model_rejects_bad_task():
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(ModelConfig.preset("tiny"), "ctc")
    with pytest.raises(ValueError, match="unknown task"):
        build_model(ModelConfig.preset("tiny"), "mlm")


def _overfit(steps: int, name: str = "tiny", seconds: float = 1.0) -> tuple[float, float]:
    torch.manual_seed(0)
    cfg = ModelConfig.preset(
        name, dropout=0.0, attention_dropout=0.0, dropout_input=0.0, dropout_features=0.0
    )
    model = build_model(cfg, "pretrain").train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    wav = _waves(2, seconds)
    losses = []
    for step in range(steps):
        model.set_num_updates(step)
        out = model(wav)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return sum(losses[:5]) / 5, sum(losses[-5:]) / 5


def test_one_batch_loss_falls_quickly():
    first, last = _overfit(30, seconds=0.5)
    assert last < 0.75 * first, (first, last)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny", "tiny-hourglass"])
def test_one_batch_overfits_in_200_steps(name):
    first, last = _overfit(200, name)
    assert last <= 0.5 * first, (first, last)
