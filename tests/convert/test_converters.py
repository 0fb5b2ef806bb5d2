"""Converters: torchaudio, HF transformers and fairseq formats into our models and back."""

import argparse
import os

import pytest
import torch
import torchaudio
import transformers

from hourglass_w2v2.convert import (
    from_fairseq,
    from_huggingface,
    from_torchaudio,
    to_fairseq,
    to_nvidia,
)
from hourglass_w2v2.models import ModelConfig, Wav2Vec2Ctc, Wav2Vec2Pretrain, build_model

SMALL_CONV = [(32, 10, 5), (32, 3, 2), (32, 3, 2), (32, 2, 2)]


def _wav(batch=2, n=8000, seed=0):
    return torch.randn(batch, n, generator=torch.Generator().manual_seed(seed))


def _hf_config(**kw) -> transformers.Wav2Vec2Config:
    return transformers.Wav2Vec2Config(
        conv_dim=[d for d, _, _ in SMALL_CONV],
        conv_kernel=[k for _, k, _ in SMALL_CONV],
        conv_stride=[s for _, _, s in SMALL_CONV],
        hidden_size=64,
        num_hidden_layers=2,
        intermediate_size=128,
        num_attention_heads=4,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        num_codevectors_per_group=24,
        codevector_dim=32,
        proj_codevector_dim=16,
        vocab_size=9,
        **kw,
    )


def test_torchaudio_with_ctc_head():
    torch.manual_seed(0)
    ref = torchaudio.models.wav2vec2_model(
        extractor_mode="layer_norm",
        extractor_conv_layer_config=SMALL_CONV,
        extractor_conv_bias=True,
        encoder_embed_dim=64,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=16,
        encoder_pos_conv_groups=4,
        encoder_num_layers=3,
        encoder_num_heads=4,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=128,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=True,
        encoder_layer_drop=0.0,
        aux_num_out=9,
    ).eval()
    ours = from_torchaudio(ref).eval()
    assert isinstance(ours, Wav2Vec2Ctc)
    assert ours.cfg.extractor_conv_layers == SMALL_CONV and ours.cfg.conv_pos == 16
    wav = _wav()
    with torch.no_grad():
        expected, _ = ref(wav)
        got = ours(wav).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_huggingface_pretraining_heads_and_quantizer():
    torch.manual_seed(0)
    ref = transformers.Wav2Vec2ForPreTraining(_hf_config()).eval()
    ours = from_huggingface(ref).eval()
    assert isinstance(ours, Wav2Vec2Pretrain)
    assert (ours.cfg.latent_vars, ours.cfg.quantizer_dim, ours.cfg.final_dim) == (24, 32, 16)
    wav = _wav()
    with torch.no_grad():
        hf = ref.wav2vec2(wav)
        ours_feats = ours.feature_norm(ours.extract_features(wav)[0])
        torch.testing.assert_close(ours_feats, hf.extract_features, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ours.encode(wav), hf.last_hidden_state, atol=1e-5, rtol=1e-4)
        # eval-mode quantizer: HF picks argmax codes, as ours does
        codes, ppl = ref.quantizer(hf.extract_features)
        q = ours.quantizer(ours_feats.reshape(-1, ours_feats.shape[-1]))
        torch.testing.assert_close(q.x.view_as(codes), codes, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(q.code_perplexity, ppl, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(
            ours.project_q(q.x).view(*codes.shape[:2], -1),
            ref.project_q(codes),
            atol=1e-5,
            rtol=1e-4,
        )
        torch.testing.assert_close(
            ours.final_proj(hf.last_hidden_state), ref.project_hid(hf.last_hidden_state)
        )


def test_huggingface_ctc_from_state_dict_and_config_dict():
    torch.manual_seed(0)
    ref = transformers.Wav2Vec2ForCTC(
        _hf_config(feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)
    ).eval()
    ours = from_huggingface(ref.state_dict(), ref.config.to_dict()).eval()
    assert isinstance(ours, Wav2Vec2Ctc) and ours.cfg.layer_norm_first
    wav = _wav()
    with torch.no_grad():
        torch.testing.assert_close(ours(wav).logits, ref(wav).logits, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="needs its config"):
        from_huggingface(ref.state_dict())


def _fairseq_from_hf(ref: transformers.Wav2Vec2ForPreTraining) -> dict[str, torch.Tensor]:
    """fairseq key names spelled out by hand (fairseq's Wav2Vec2Model), independent of ours."""
    sd = ref.state_dict()
    out = {"mask_emb": sd["wav2vec2.masked_spec_embed"]}
    for i in range(len(SMALL_CONV)):
        out[f"feature_extractor.conv_layers.{i}.0.weight"] = sd[
            f"wav2vec2.feature_extractor.conv_layers.{i}.conv.weight"
        ]
    out["feature_extractor.conv_layers.0.2.weight"] = sd[
        "wav2vec2.feature_extractor.conv_layers.0.layer_norm.weight"
    ]
    out["feature_extractor.conv_layers.0.2.bias"] = sd[
        "wav2vec2.feature_extractor.conv_layers.0.layer_norm.bias"
    ]
    for kind in ("weight", "bias"):
        out[f"layer_norm.{kind}"] = sd[f"wav2vec2.feature_projection.layer_norm.{kind}"]
        out[f"post_extract_proj.{kind}"] = sd[f"wav2vec2.feature_projection.projection.{kind}"]
        out[f"encoder.layer_norm.{kind}"] = sd[f"wav2vec2.encoder.layer_norm.{kind}"]
        out[f"project_q.{kind}"] = sd[f"project_q.{kind}"]
        out[f"final_proj.{kind}"] = sd[f"project_hid.{kind}"]
        out[f"quantizer.weight_proj.{kind}"] = sd[f"quantizer.weight_proj.{kind}"]
        for i in range(2):
            hf, fs = f"wav2vec2.encoder.layers.{i}.", f"encoder.layers.{i}."
            for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
                out[f"{fs}self_attn.{p}.{kind}"] = sd[f"{hf}attention.{p}.{kind}"]
            out[f"{fs}self_attn_layer_norm.{kind}"] = sd[f"{hf}layer_norm.{kind}"]
            out[f"{fs}fc1.{kind}"] = sd[f"{hf}feed_forward.intermediate_dense.{kind}"]
            out[f"{fs}fc2.{kind}"] = sd[f"{hf}feed_forward.output_dense.{kind}"]
            out[f"{fs}final_layer_norm.{kind}"] = sd[f"{hf}final_layer_norm.{kind}"]
    pos = "wav2vec2.encoder.pos_conv_embed.conv."
    out["encoder.pos_conv.0.bias"] = sd[pos + "bias"]
    out["encoder.pos_conv.0.weight_g"] = sd[pos + "parametrizations.weight.original0"]
    out["encoder.pos_conv.0.weight_v"] = sd[pos + "parametrizations.weight.original1"]
    out["quantizer.vars"] = sd["quantizer.codevectors"]
    return out


FAIRSEQ_MODEL_CFG = {
    "_name": "wav2vec2",
    "extractor_mode": "default",
    "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 2 + [(32, 2, 2)]",
    "conv_bias": False,
    "encoder_embed_dim": 64,
    "encoder_layers": 2,
    "encoder_ffn_embed_dim": 128,
    "encoder_attention_heads": 4,
    "layer_norm_first": False,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "final_dim": 16,
    "latent_vars": 24,
    "latent_groups": 2,
    "latent_dim": 32,
    "latent_temp": "(2, 0.5, 0.999995)",
    "feature_grad_mult": 0.1,
    "encoder_layerdrop": 0.05,
    "activation_fn": "gelu",
    "quantize_targets": True,
}


@pytest.mark.parametrize("style", ["cfg", "args"])
def test_fairseq_checkpoint_with_fairseq_key_names(style):
    torch.manual_seed(0)
    ref = transformers.Wav2Vec2ForPreTraining(_hf_config()).eval()
    if style == "cfg":
        ckpt = {
            "cfg": {
                "model": FAIRSEQ_MODEL_CFG,
                "criterion": {"_name": "wav2vec", "loss_weights": [0.2, 5.0]},
            },
            "model": _fairseq_from_hf(ref),
        }
    else:  # argparse-era checkpoints (and NVIDIA DeepLearningExamples') keep an `args` Namespace
        ckpt = {"args": argparse.Namespace(**FAIRSEQ_MODEL_CFG), "model": _fairseq_from_hf(ref)}
    ours = from_fairseq(ckpt).eval()
    cfg = ours.cfg
    assert cfg.extractor_conv_layers == SMALL_CONV and cfg.latent_temp == (2.0, 0.5, 0.999995)
    assert cfg.layerdrop == 0.05 and cfg.feature_grad_mult == 0.1
    if style == "cfg":
        assert (cfg.diversity_weight, cfg.feature_penalty_weight) == (0.2, 5.0)
    wav = _wav()
    with torch.no_grad():
        torch.testing.assert_close(
            ours.encode(wav), ref.wav2vec2(wav).last_hidden_state, atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(ours.quantizer.codebook, ref.quantizer.codevectors)


def test_fairseq_checkpoint_file_with_omegaconf_cfg(tmp_path):
    """fairseq >= 0.10 pickles its config as an omegaconf DictConfig: such a file loads by path."""
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    ref = transformers.Wav2Vec2ForPreTraining(_hf_config()).eval()
    cfg = OmegaConf.create({"model": FAIRSEQ_MODEL_CFG, "criterion": {"_name": "wav2vec"}})
    path = tmp_path / "checkpoint_best.pt"
    torch.save({"cfg": cfg, "model": _fairseq_from_hf(ref)}, path)
    ours = from_fairseq(path).eval()
    assert ours.cfg.extractor_conv_layers == SMALL_CONV
    with torch.no_grad():
        torch.testing.assert_close(
            ours.encode(_wav()), ref.wav2vec2(_wav()).last_hidden_state, atol=1e-5, rtol=1e-4
        )


@pytest.mark.parametrize(
    "name,task", [("tiny", "pretrain"), ("tiny-hourglass", "pretrain"), ("tiny", "ctc")]
)
def test_to_fairseq_round_trip(name, task, tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig.preset(name, shorten="linear", upsample="linear", final_dropout=0.1)
    model = build_model(cfg, task, vocab_size=7 if task == "ctc" else None).eval()
    path = tmp_path / "checkpoint_best.pt"
    ckpt = to_fairseq(model, path)
    keys = ckpt["model"].keys()
    prefix = "w2v_encoder.w2v_model." if task == "ctc" else ""
    for key in (
        "feature_extractor.conv_layers.0.0.weight",
        "feature_extractor.conv_layers.0.2.bias",
        "layer_norm.weight",
        "post_extract_proj.weight",
        "encoder.pos_conv.0.weight_g",
        "encoder.pos_conv.0.weight_v",
        "encoder.layers.3.self_attn.k_proj.weight",
        "encoder.layers.0.self_attn_layer_norm.bias",
        "encoder.layers.1.fc2.weight",
    ):
        assert prefix + key in keys, key
    if task == "ctc":
        assert "w2v_encoder.proj.weight" in keys
    else:
        assert "quantizer.vars" in keys and "final_proj.weight" in keys
    back = from_fairseq(path).eval()
    assert type(back) is type(model)
    assert back.cfg.hourglass == model.cfg.hourglass
    sd, sd_back = model.state_dict(), back.state_dict()
    assert sd.keys() == sd_back.keys()
    for k in sd:
        assert torch.equal(sd[k], sd_back[k]), k
    wav = _wav(n=16000)
    with torch.no_grad():
        assert torch.equal(back.encode(wav), model.encode(wav))


def test_bad_inputs_are_named():
    ckpt = to_fairseq(build_model(ModelConfig.preset("tiny")))
    ckpt["model"]["encoder.layers.0.self_attn.rel_bias"] = torch.zeros(1)
    with pytest.raises(ValueError, match="rel_bias"):
        from_fairseq(ckpt)
    ckpt = to_fairseq(build_model(ModelConfig.preset("tiny")))
    ckpt["cfg"]["model"]["target_glu"] = True
    with pytest.raises(ValueError, match="target_glu"):
        from_fairseq(ckpt)
    with pytest.raises(ValueError, match="no 'model' key"):
        from_fairseq({"cfg": {}})


@pytest.mark.parametrize("export", [to_fairseq, to_nvidia], ids=["fairseq", "nvidia"])
def test_an_export_on_a_full_disk_keeps_the_previous_checkpoint(export, tmp_path, monkeypatch):
    """Exported checkpoints go to a temporary name and are renamed, as ours are: a failed save
    (fsync failing on a full disk) leaves the previous export loadable."""
    model = build_model(ModelConfig.preset("tiny")).eval()
    path = tmp_path / "checkpoint.pt"
    export(model, path)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        export(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
