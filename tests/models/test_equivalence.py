"""Our vanilla models equal torchaudio's and HF transformers' wav2vec 2.0 given their weights.

Extractor output and every encoder layer output are compared within 1e-4 (fp32, eval), with
and without padding. With padding, group-norm references are run per utterance: they
normalise over the padded batch (a known leak that ours fixes, also asserted here).
"""

import pytest
import torch
import torchaudio
import transformers

from hourglass_w2v2.convert import from_huggingface, from_torchaudio

TOL = 1e-4
LENGTHS = [16000, 11000]  # 1 s and 0.69 s


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    wav = torch.randn(len(LENGTHS), max(LENGTHS), generator=gen)
    pad = torch.arange(max(LENGTHS))[None] >= torch.tensor(LENGTHS)[:, None]
    return wav, pad


def _ours_layers(model, wav, pad=None):
    outs = []
    final, frame_mask = model.encode_with_mask(wav, pad, outs)
    feats, _ = model.extract_features(wav, pad)
    return feats, outs, final


def _check_torchaudio(ref, ours):
    wav, pad = _batch()
    with torch.no_grad():
        # unpadded batch
        feats, outs, final = _ours_layers(ours, wav)
        ref_feats, _ = ref.feature_extractor(wav, None)
        ref_layers, _ = ref.extract_features(wav)
        ref_final, _ = ref(wav)
        assert (feats - ref_feats).abs().max() < TOL
        assert len(outs) == len(ref_layers)
        for i, (a, b) in enumerate(zip(outs, ref_layers, strict=True)):
            assert (a - b).abs().max() < TOL, f"layer {i}"
        assert (final - ref_final).abs().max() < TOL
        # padded batch vs each utterance alone in the reference
        feats, outs, final = _ours_layers(ours, wav, pad)
        for b, n in enumerate(LENGTHS):
            single = wav[b : b + 1, :n]
            ref_feats, _ = ref.feature_extractor(single, None)
            ref_layers, _ = ref.extract_features(single)
            ref_final, _ = ref(single)
            t = ref_feats.shape[1]
            assert (feats[b, :t] - ref_feats[0]).abs().max() < TOL
            for i, (a, r) in enumerate(zip(outs, ref_layers, strict=True)):
                assert (a[b, :t] - r[0]).abs().max() < TOL, f"utt {b} layer {i}"
            assert (final[b, :t] - ref_final[0]).abs().max() < TOL


def test_torchaudio_base():
    torch.manual_seed(0)
    ref = torchaudio.models.wav2vec2_base().eval()
    ours = from_torchaudio(ref).eval()
    assert ours.cfg.extractor_mode == "group_norm" and not ours.cfg.layer_norm_first
    _check_torchaudio(ref, ours)


def test_torchaudio_group_norm_leaks_padding_ours_does_not():
    torch.manual_seed(0)
    ref = torchaudio.models.wav2vec2_base().eval()
    ours = from_torchaudio(ref).eval()
    wav, pad = _batch()
    wav[1, LENGTHS[1] :] = 5.0
    with torch.no_grad():
        ref_batch, _ = ref(wav, torch.tensor(LENGTHS))
        ref_alone, _ = ref(wav[1:, : LENGTHS[1]])
        ours_batch = ours.encode(wav, pad)
    t = ref_alone.shape[1]
    assert (ref_batch[1, :t] - ref_alone[0]).abs().max() > 1e-2
    assert (ours_batch[1, :t] - ref_alone[0]).abs().max() < TOL


@pytest.mark.slow
def test_torchaudio_large_lv60k():
    torch.manual_seed(0)
    ref = torchaudio.models.wav2vec2_large_lv60k().eval()
    ours = from_torchaudio(ref).eval()
    assert ours.cfg.extractor_mode == "layer_norm" and ours.cfg.layer_norm_first
    _check_torchaudio(ref, ours)
    # layer-norm extractors do not leak: the padded reference batch agrees too
    wav, pad = _batch()
    with torch.no_grad():
        ref_batch, lengths = ref(wav, torch.tensor(LENGTHS))
        ours_batch = ours.encode(wav, pad)
    for b, n in enumerate(lengths.tolist()):
        assert (ours_batch[b, :n] - ref_batch[b, :n]).abs().max() < TOL


def _hf_config(large: bool, layers: int) -> transformers.Wav2Vec2Config:
    if not large:
        return transformers.Wav2Vec2Config(num_hidden_layers=layers)
    return transformers.Wav2Vec2Config(
        num_hidden_layers=layers,
        hidden_size=1024,
        intermediate_size=4096,
        num_attention_heads=16,
        feat_extract_norm="layer",
        conv_bias=True,
        do_stable_layer_norm=True,
        codevector_dim=768,
        proj_codevector_dim=768,
    )


def _check_huggingface(large: bool, layers: int):
    torch.manual_seed(0)
    ref = transformers.Wav2Vec2Model(_hf_config(large, layers)).eval()
    ours = from_huggingface(ref).eval()
    assert ours.cfg.layer_norm_first == large
    wav, pad = _batch()
    with torch.no_grad():
        feats, outs, final = _ours_layers(ours, wav)
        r = ref(wav, output_hidden_states=True)
        assert (ours.feature_norm(feats) - r.extract_features).abs().max() < TOL
        # HF: hidden_states[0] is the encoder input; for pre-LN the last entry is normed
        hidden = r.hidden_states[1:]
        for i in range(layers - (1 if large else 0)):
            assert (outs[i] - hidden[i]).abs().max() < TOL, f"layer {i}"
        assert (final - r.last_hidden_state).abs().max() < TOL
        final_padded = ours.encode(wav, pad)
        for b, n in enumerate(LENGTHS):
            alone = ref(wav[b : b + 1, :n]).last_hidden_state
            t = alone.shape[1]
            assert (final_padded[b, :t] - alone[0]).abs().max() < TOL
        if large:  # HF masks padding properly for layer-norm models: compare the batch too
            attn = (~pad).long()
            batch = ref(wav, attention_mask=attn).last_hidden_state
            lengths = ours.output_lengths(torch.tensor(LENGTHS))
            for b, n in enumerate(lengths.tolist()):
                assert (final_padded[b, :n] - batch[b, :n]).abs().max() < TOL


def test_huggingface_base():
    _check_huggingface(large=False, layers=12)


@pytest.mark.slow
def test_huggingface_large():
    _check_huggingface(large=True, layers=24)


def test_huggingface_large_architecture_small_depth():
    """The pre-LN / layer-norm-extractor path at 2 layers, fast enough for every run."""
    _check_huggingface(large=True, layers=2)
