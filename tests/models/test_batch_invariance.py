"""A padded batch gives every utterance the output it gets alone, for every preset."""

import pytest
import torch

from hourglass_w2v2.models import ModelConfig, build_model

FAST = ["tiny", "tiny-hourglass", "base", "base-hourglass"]
SLOW = ["large", "large-hourglass"]


def _check(name: str, lengths: list[int], **overrides) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset(name, **overrides), "ctc", vocab_size=7).eval()
    gen = torch.Generator().manual_seed(1)
    wav = torch.randn(len(lengths), max(lengths), generator=gen)
    pad = torch.arange(max(lengths))[None] >= torch.tensor(lengths)[:, None]
    wav[pad] = 3.0  # loud padding: must not matter
    with torch.no_grad():
        batch = model(wav, pad)
        for b, n in enumerate(lengths):
            alone = model(wav[b : b + 1, :n])
            t = alone.logits.shape[1]
            assert batch.lengths[b] == t and not batch.padding_mask[b, :t].any()
            assert batch.padding_mask[b, t:].all()
            err = (batch.logits[b, :t] - alone.logits[0]).abs().max()
            assert err < 1e-4, f"{name} utterance {b}: {err}"


@pytest.mark.parametrize("name", FAST)
def test_fast_presets(name):
    # 1 s, and lengths whose frame counts (49, 34, 21) are not multiples of the factor 4
    _check(name, [16000, 11000, 7000] if name.startswith("tiny") else [16000, 7000])


@pytest.mark.parametrize(
    "shorten,upsample", [("linear", "linear"), ("avg", "linear"), ("linear", "repeat")]
)
def test_hourglass_resampling_modes(shorten, upsample):
    _check("tiny-hourglass", [16000, 11000, 7000], shorten=shorten, upsample=upsample)


def test_nested_hourglass_pre_ln():
    _check("tiny", [16000, 9000], hourglass=[1, [[1, [1, 2], 0], 2], 1], layer_norm_first=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_big_presets(name):
    _check(name, [16000, 11000])
