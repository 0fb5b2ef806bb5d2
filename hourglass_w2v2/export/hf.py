"""Export a vanilla fine-tuned CTC model as a Hugging Face ``transformers`` ``Wav2Vec2ForCTC``.

The folder holds ``config.json`` and ``model.safetensors`` (``save_pretrained``), the files of
a ``Wav2Vec2CTCTokenizer`` (our units; ``<blk>`` = id 0 is the pad token transformers takes as
the CTC blank; a char lang dir's ``▁`` unit is written as its word delimiter ``|``) and of a
``Wav2Vec2FeatureExtractor`` (``do_normalize`` as the model was fine-tuned). transformers has
no hourglass encoder, so an hourglass model is refused. Import back with
:func:`hourglass_w2v2.convert.references.from_huggingface`.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from hourglass_w2v2.export import ExportError
from hourglass_w2v2.fileio import atomic_write_text
from hourglass_w2v2.lang.tokenizer import Tokenizer
from hourglass_w2v2.models.config import SAMPLE_RATE, ModelConfig
from hourglass_w2v2.models.wav2vec2 import Wav2Vec2Ctc

WORD_DELIMITER = "|"
# our key prefix -> HF key prefix (the rest of the key is the same)
_RENAMES = [
    ("feature_norm.", "wav2vec2.feature_projection.layer_norm."),
    ("feature_proj.", "wav2vec2.feature_projection.projection."),
    ("encoder.pos_conv.conv.", "wav2vec2.encoder.pos_conv_embed.conv."),
    ("encoder.layer_norm.", "wav2vec2.encoder.layer_norm."),
    ("ctc_head.", "lm_head."),
]
_LAYER_RENAMES = {
    "self_attn.out_proj": "attention.out_proj",
    "self_attn_layer_norm": "layer_norm",
    "fc1": "feed_forward.intermediate_dense",
    "fc2": "feed_forward.output_dense",
    "final_layer_norm": "final_layer_norm",
}


def hf_config_dict(cfg: ModelConfig, vocab_size: int) -> dict:
    """``Wav2Vec2Config`` keyword arguments for our model config (inference-relevant fields,
    plus dropouts and masking as fine-tuned); an hourglass config raises :class:`ExportError`."""
    if cfg.hourglass is not None:
        raise ExportError(
            f"the model is an hourglass model (hourglass: {list(cfg.hourglass)}): transformers' "
            "Wav2Vec2ForCTC has no shortened middle layers, so its weights cannot be loaded "
            "there; export it with --format onnx instead (sherpa-onnx / onnxruntime run it)"
        )
    dims, kernels, strides = zip(*cfg.extractor_conv_layers, strict=True)
    return dict(
        vocab_size=vocab_size,
        hidden_size=cfg.encoder_embed_dim,
        num_hidden_layers=cfg.encoder_layers,
        num_attention_heads=cfg.encoder_attention_heads,
        intermediate_size=cfg.encoder_ffn_embed_dim,
        hidden_act="gelu",
        feat_extract_activation="gelu",
        feat_extract_norm="group" if cfg.extractor_mode == "group_norm" else "layer",
        conv_dim=list(dims),
        conv_kernel=list(kernels),
        conv_stride=list(strides),
        conv_bias=cfg.extractor_conv_bias,
        num_conv_pos_embeddings=cfg.conv_pos,
        num_conv_pos_embedding_groups=cfg.conv_pos_groups,
        do_stable_layer_norm=cfg.layer_norm_first,
        layer_norm_eps=1e-5,
        hidden_dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        feat_proj_dropout=cfg.dropout_input,
        final_dropout=cfg.final_dropout,
        layerdrop=cfg.layerdrop,
        mask_time_prob=cfg.mask_prob,
        mask_time_length=cfg.mask_length,
        mask_feature_prob=cfg.mask_channel_prob,
        mask_feature_length=cfg.mask_channel_length,
        pad_token_id=0,
        ctc_loss_reduction="sum",
    )


def ours_to_hf_state(sd: dict[str, Tensor], extractor_mode: str) -> dict[str, Tensor]:
    """Rename a :class:`Wav2Vec2Ctc` state dict to ``Wav2Vec2ForCTC``'s keys (fused q/k/v split)."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        parts = key.split(".")
        if key == "mask_emb":
            out["wav2vec2.masked_spec_embed"] = value
        elif parts[0] == "feature_extractor":
            i, module, kind = parts[2], parts[3], parts[4]
            name = "conv" if module == "conv" else "layer_norm"
            out[f"wav2vec2.feature_extractor.conv_layers.{i}.{name}.{kind}"] = value
        elif parts[:2] == ["encoder", "layers"]:
            i, rest = parts[2], ".".join(parts[3:])
            prefix = f"wav2vec2.encoder.layers.{i}"
            if rest.startswith("self_attn.qkv_proj."):
                for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                    out[f"{prefix}.attention.{name}_proj.{parts[-1]}"] = part.clone()
            else:
                module, kind = rest.rsplit(".", 1)
                out[f"{prefix}.{_LAYER_RENAMES[module]}.{kind}"] = value
        else:
            for src, dst in _RENAMES:
                if key.startswith(src):
                    out[dst + key[len(src) :]] = value
                    break
            else:
                raise ExportError(f"no transformers name for parameter {key!r}")
    return out


def export_hf(
    model: Wav2Vec2Ctc,
    tokenizer: Tokenizer,
    normalize: bool,
    out_dir: str | Path,
    source: str = "",
) -> list[Path]:
    """Write ``model`` as a ``Wav2Vec2ForCTC`` folder that ``from_pretrained`` loads, with its
    tokenizer and feature extractor configs; return the files written.

    The weights are checked to load with no missing or unexpected key.
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
    )

    config = Wav2Vec2Config(**hf_config_dict(model.cfg, tokenizer.vocab_size))
    hf = Wav2Vec2ForCTC(config)
    state = ours_to_hf_state(model.state_dict(), model.cfg.extractor_mode)
    result = hf.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ExportError(
            f"{source}: transformers' Wav2Vec2ForCTC does not take these weights (missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.eval().save_pretrained(str(out_dir))
    # transformers' CTC tokenizer spells the word boundary "|" (its default, the one its
    # from_pretrained keeps); a char lang dir's "▁" unit becomes it, BPE pieces stay as they are
    vocab = {WORD_DELIMITER if t == "\u2581" else t: i for i, t in enumerate(tokenizer.id2token)}
    atomic_write_text(out_dir / "vocab.json", json.dumps(vocab, indent=2, ensure_ascii=False))
    # the tokenizer writes its own config files, in the form its version reads back
    Wav2Vec2CTCTokenizer(
        str(out_dir / "vocab.json"),
        pad_token=tokenizer.id2token[0],
        unk_token=tokenizer.id2token[tokenizer.unk_id],
        word_delimiter_token=WORD_DELIMITER,
        bos_token=None,
        eos_token=None,
        do_lower_case=False,
    ).save_pretrained(str(out_dir))
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=normalize,
        # group-norm models see padding as signal in transformers: they take no attention mask
        return_attention_mask=model.cfg.extractor_mode == "layer_norm",
    ).save_pretrained(str(out_dir))
    return sorted(p for p in out_dir.iterdir() if p.is_file())
