"""torchaudio and HF transformers wav2vec 2.0 models -> ours (via fairseq key names)."""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

from hourglass_w2v2.convert.fairseq import fairseq_state_to_ours, load_converted
from hourglass_w2v2.models.config import ModelConfig
from hourglass_w2v2.models.wav2vec2 import Wav2Vec2Ctc, Wav2Vec2Pretrain

# torchaudio key regex -> fairseq key template; "{norm}" is filled per extractor mode
_TORCHAUDIO_TO_FAIRSEQ = [
    (
        r"feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.0.\2",
    ),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.layer_norm\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.{norm}.\2",
    ),
    (r"encoder\.feature_projection\.layer_norm\.(weight|bias)", r"layer_norm.\1"),
    (r"encoder\.feature_projection\.projection\.(weight|bias)", r"post_extract_proj.\1"),
    (r"encoder\.transformer\.pos_conv_embed\.conv\.(.+)", r"encoder.pos_conv.0.\1"),
    (r"encoder\.transformer\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (
        r"encoder\.transformer\.layers\.(\d+)\.attention\.(\w+_proj)\.(weight|bias)",
        r"encoder.layers.\1.self_attn.\2.\3",
    ),
    (
        r"encoder\.transformer\.layers\.(\d+)\.layer_norm\.(weight|bias)",
        r"encoder.layers.\1.self_attn_layer_norm.\2",
    ),
    (
        r"encoder\.transformer\.layers\.(\d+)\.feed_forward\.intermediate_dense\.(weight|bias)",
        r"encoder.layers.\1.fc1.\2",
    ),
    (
        r"encoder\.transformer\.layers\.(\d+)\.feed_forward\.output_dense\.(weight|bias)",
        r"encoder.layers.\1.fc2.\2",
    ),
    (
        r"encoder\.transformer\.layers\.(\d+)\.final_layer_norm\.(weight|bias)",
        r"encoder.layers.\1.final_layer_norm.\2",
    ),
    (r"aux\.(weight|bias)", r"ctc.\1"),
]

# HF key regex (after stripping "wav2vec2.") -> torchaudio / fairseq key template
_HF_TO_TORCHAUDIO = [
    (r"feature_projection\.(.+)", r"encoder.feature_projection.\1"),
    (r"encoder\.(pos_conv_embed|layer_norm|layers)(.*)", r"encoder.transformer.\1\2"),
    (r"masked_spec_embed", r"mask_emb"),
    (r"quantizer\.codevectors", r"quantizer.vars"),
    (r"project_hid\.(weight|bias)", r"final_proj.\1"),
    (r"lm_head\.(weight|bias)", r"aux.\1"),
]
_FAIRSEQ_PASSTHROUGH = re.compile(
    r"mask_emb|quantizer\.vars|quantizer\.weight_proj\.\w+|"
    r"project_q\.\w+|final_proj\.\w+"
)


def _rename(key: str, table: list[tuple[str, str]], **fmt: str) -> str | None:
    for pattern, template in table:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, template.format(**fmt) if fmt else template, key)
    return None


def torchaudio_state_to_fairseq(sd: dict[str, Tensor], extractor_mode: str) -> dict[str, Tensor]:
    """Rename a torchaudio ``Wav2Vec2Model`` state dict to fairseq keys (``aux`` -> ``ctc``)."""
    norm = "2" if extractor_mode == "group_norm" else "2.1"
    out = {}
    for key, value in sd.items():
        new = _rename(key, _TORCHAUDIO_TO_FAIRSEQ, norm=norm)
        if new is None and _FAIRSEQ_PASSTHROUGH.fullmatch(key):
            new = key
        if new is None:
            raise ValueError(f"unexpected key in torchaudio wav2vec 2.0 state dict: {key!r}")
        out[new] = value
    return out


def _torchaudio_config(model: nn.Module) -> ModelConfig:
    blocks = model.feature_extractor.conv_layers
    first_norm = blocks[0].layer_norm
    if first_norm is None:
        raise ValueError("torchaudio model without a normalisation in the first conv layer")
    mode = "group_norm" if isinstance(first_norm, nn.GroupNorm) else "layer_norm"
    transformer = model.encoder.transformer
    layer = transformer.layers[0]
    if type(layer.attention).__name__ != "SelfAttention":
        raise ValueError(
            f"unsupported torchaudio attention {type(layer.attention).__name__} "
            "(WavLM is not wav2vec 2.0)"
        )
    pos = transformer.pos_conv_embed
    return ModelConfig(
        extractor_conv_layers=[(b.conv.out_channels, b.kernel_size, b.stride) for b in blocks],
        extractor_mode=mode,
        extractor_conv_bias=blocks[0].conv.bias is not None,
        encoder_embed_dim=layer.attention.embed_dim,
        encoder_layers=len(transformer.layers),
        encoder_ffn_embed_dim=layer.feed_forward.intermediate_dense.out_features,
        encoder_attention_heads=layer.attention.num_heads,
        layer_norm_first=layer.layer_norm_first,
        conv_pos=pos.kernel_size,
        conv_pos_groups=pos.conv.groups,
        dropout=transformer.dropout.p,
        attention_dropout=layer.attention.dropout,
        activation_dropout=layer.feed_forward.intermediate_dropout.p,
        dropout_input=model.encoder.feature_projection.dropout.p,
        layerdrop=transformer.layer_drop,
    )


def from_torchaudio(model: nn.Module) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Our model with the weights of a torchaudio ``Wav2Vec2Model`` (e.g. ``wav2vec2_base()``).

    torchaudio keeps no quantizer, so the result is a :class:`Wav2Vec2Pretrain` with fresh
    pretraining heads, or a :class:`Wav2Vec2Ctc` when the model has an ``aux`` CTC head.
    """
    cfg = _torchaudio_config(model)
    sd = torchaudio_state_to_fairseq(model.state_dict(), cfg.extractor_mode)
    return load_converted(cfg, fairseq_state_to_ours(sd))


def _hf_config(config: Any) -> ModelConfig:
    c = config if isinstance(config, dict) else config.to_dict()
    for name in ("feat_extract_activation", "hidden_act"):
        if c.get(name, "gelu") != "gelu":
            raise ValueError(f"HF config {name}={c[name]!r} is not supported (need 'gelu')")
    if c.get("feat_extract_norm", "group") not in ("group", "layer"):
        raise ValueError(f"HF feat_extract_norm={c['feat_extract_norm']!r} is not supported")
    return ModelConfig(
        extractor_conv_layers=list(
            zip(c["conv_dim"], c["conv_kernel"], c["conv_stride"], strict=True)
        ),
        extractor_mode=f"{c.get('feat_extract_norm', 'group')}_norm",
        extractor_conv_bias=bool(c.get("conv_bias", False)),
        encoder_embed_dim=c["hidden_size"],
        encoder_layers=c["num_hidden_layers"],
        encoder_ffn_embed_dim=c["intermediate_size"],
        encoder_attention_heads=c["num_attention_heads"],
        layer_norm_first=bool(c.get("do_stable_layer_norm", False)),
        conv_pos=c.get("num_conv_pos_embeddings", 128),
        conv_pos_groups=c.get("num_conv_pos_embedding_groups", 16),
        dropout=c.get("hidden_dropout", 0.1),
        attention_dropout=c.get("attention_dropout", 0.1),
        activation_dropout=c.get("activation_dropout", 0.0),
        dropout_input=c.get("feat_proj_dropout", 0.0),
        dropout_features=c.get("feat_quantizer_dropout", 0.0),
        layerdrop=c.get("layerdrop", 0.0),
        final_dropout=c.get("final_dropout", 0.0),
        mask_prob=c.get("mask_time_prob", 0.65),
        mask_length=c.get("mask_time_length", 10),
        min_masks=c.get("mask_time_min_masks", 2),
        mask_channel_prob=c.get("mask_feature_prob", 0.0),
        mask_channel_length=c.get("mask_feature_length", 10),
        final_dim=c.get("proj_codevector_dim", 256),
        latent_dim=c.get("codevector_dim", 256),
        latent_vars=c.get("num_codevectors_per_group", 320),
        latent_groups=c.get("num_codevector_groups", 2),
        num_negatives=c.get("num_negatives", 100),
        logit_temp=c.get("contrastive_logits_temperature", 0.1),
        diversity_weight=c.get("diversity_loss_weight", 0.1),
    )


def huggingface_state_to_fairseq(sd: dict[str, Tensor], extractor_mode: str) -> dict[str, Tensor]:
    """Rename an HF ``Wav2Vec2Model``/``ForPreTraining``/``ForCTC`` state dict to fairseq keys."""
    renamed = {}
    for key, value in sd.items():
        if key.startswith("wav2vec2."):
            key = key[len("wav2vec2.") :]
        renamed[_rename(key, _HF_TO_TORCHAUDIO) or key] = value
    return torchaudio_state_to_fairseq(renamed, extractor_mode)


def from_huggingface(
    model_or_state_dict: nn.Module | dict[str, Tensor], config: Any = None
) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Our model from HF transformers' ``Wav2Vec2Model``, ``Wav2Vec2ForPreTraining`` or
    ``Wav2Vec2ForCTC`` (a module, or a state dict plus its ``Wav2Vec2Config`` / config dict).

    ``ForPreTraining`` weights fill our quantizer and projections too; ``ForCTC`` gives a
    :class:`Wav2Vec2Ctc`.
    """
    if isinstance(model_or_state_dict, nn.Module):
        sd = model_or_state_dict.state_dict()
        config = model_or_state_dict.config if config is None else config
    else:
        sd = model_or_state_dict
    if config is None:
        raise ValueError("from_huggingface: a state dict needs its config")
    cfg = _hf_config(config)
    return load_converted(
        cfg, fairseq_state_to_ours(huggingface_state_to_fairseq(sd, cfg.extractor_mode))
    )
