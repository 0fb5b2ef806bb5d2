"""fairseq wav2vec 2.0 checkpoints <-> our models.

fairseq's key names are the hub every converter goes through: torchaudio and transformers
state dicts are renamed to fairseq keys first, then :func:`fairseq_state_to_ours` builds ours.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hourglass_w2v2.fileio import atomic_save
from hourglass_w2v2.models.config import ModelConfig, parse_spec_string
from hourglass_w2v2.models.wav2vec2 import Wav2Vec2Ctc, Wav2Vec2Pretrain, build_model

_POS_G = "encoder.pos_conv.conv.parametrizations.weight.original0"
_POS_V = "encoder.pos_conv.conv.parametrizations.weight.original1"
_FINETUNED_PREFIX = "w2v_encoder.w2v_model."
_CTC_HEAD = "w2v_encoder.proj."

# fairseq key regex -> our key template (qkv and pos_conv are handled separately)
_FAIRSEQ_TO_OURS = [
    (
        r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.conv.\2",
    ),
    (
        r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",
        r"feature_extractor.conv_layers.0.norm.\1",
    ),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.norm.\2",
    ),
    (r"layer_norm\.(weight|bias)", r"feature_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_proj.\1"),
    (r"mask_emb", r"mask_emb"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv.conv.bias"),
    (r"encoder\.pos_conv\.0\.(weight_g|parametrizations\.weight\.original0)", _POS_G),
    (r"encoder\.pos_conv\.0\.(weight_v|parametrizations\.weight\.original1)", _POS_V),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
    (
        r"encoder\.layers\.(\d+)\.(self_attn\.out_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)"
        r"\.(weight|bias)",
        r"encoder.layers.\1.\2.\3",
    ),
    (r"quantizer\.vars", r"quantizer.codebook"),
    (r"quantizer\.weight_proj\.(weight|bias)", r"quantizer.weight_proj.\1"),
    (r"(project_q|final_proj)\.(weight|bias)", r"\1.\2"),
    (r"ctc\.(weight|bias)", r"ctc_head.\1"),
    (r"(encoder\.(shorteners|upsamplers)\.\d+\.proj\.(weight|bias))", r"\1"),  # ours only
]
_QKV = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")


def fairseq_state_to_ours(fairseq_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a fairseq wav2vec 2.0 state dict (``ctc.*`` for a CTC head) to our keys.

    q/k/v projections are concatenated into our fused ``qkv_proj``. An unknown key raises
    ValueError naming it, so nothing is silently dropped.
    """
    ours: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in fairseq_sd.items():
        m = _QKV.fullmatch(key)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        for pattern, template in _FAIRSEQ_TO_OURS:
            if re.fullmatch(pattern, key):
                ours[re.sub(pattern, template, key)] = value
                break
        else:
            raise ValueError(f"unexpected key in wav2vec 2.0 state dict: {key!r}")
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"layer {layer}: incomplete q/k/v {kind} ({sorted(parts)})")
        ours[f"encoder.layers.{layer}.self_attn.qkv_proj.{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0
        )
    return ours


def ours_to_fairseq_state(sd: dict[str, Tensor], extractor_mode: str) -> dict[str, Tensor]:
    """Inverse of :func:`fairseq_state_to_ours` (CTC head as ``ctc.*``; hourglass resamplers
    keep our names, which fairseq has no equivalent for)."""
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)", key)
        if m:
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[f"encoder.layers.{m.group(1)}.self_attn.{name}_proj.{m.group(2)}"] = (
                    part.clone()
                )
            continue
        m = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.(conv|norm)\.(weight|bias)", key)
        if m:
            i, part, kind = m.groups()
            sub = "0" if part == "conv" else ("2" if extractor_mode == "group_norm" else "2.1")
            out[f"feature_extractor.conv_layers.{i}.{sub}.{kind}"] = value
            continue
        renames = {
            "feature_norm.": "layer_norm.",
            "feature_proj.": "post_extract_proj.",
            "encoder.pos_conv.conv.bias": "encoder.pos_conv.0.bias",
            _POS_G: "encoder.pos_conv.0.weight_g",
            _POS_V: "encoder.pos_conv.0.weight_v",
            "quantizer.codebook": "quantizer.vars",
            "ctc_head.": "ctc.",
        }
        for src, dst in renames.items():
            if key.startswith(src):
                key = dst + key[len(src) :]
                break
        out[key] = value
    return out


def _as_dict(obj: Any) -> dict[str, Any]:
    """fairseq configs come as dicts, omegaconf DictConfigs or argparse Namespaces."""
    if obj is None:
        return {}
    if isinstance(obj, argparse.Namespace):
        return vars(obj)
    if isinstance(obj, dict):
        return obj
    try:  # omegaconf.DictConfig without importing omegaconf
        from omegaconf import OmegaConf

        return OmegaConf.to_container(obj, resolve=True)
    except Exception:  # noqa: BLE001 - fall back to mapping protocol
        return dict(obj)


def config_from_fairseq(
    model_cfg: dict[str, Any], criterion_cfg: dict[str, Any] | None = None
) -> ModelConfig:
    """Our :class:`ModelConfig` for a fairseq ``wav2vec2`` model config (``cfg.model``/``args``).

    Features we do not implement (quantized inputs, target GLU, cross-sample negatives, other
    activations) raise ValueError naming the setting.
    """
    m = dict(model_cfg)
    unsupported = {
        "quantize_input": False,
        "target_glu": False,
        "cross_sample_negatives": 0,
        "codebook_negatives": 0,
        "negatives_from_everywhere": False,
        "activation_fn": "gelu",
        "quantize_targets": True,
        "same_quantizer": False,
    }
    for name, ok in unsupported.items():
        if name in m and m[name] != ok:
            raise ValueError(f"fairseq setting {name}={m[name]!r} is not supported (need {ok!r})")
    mode = {"default": "group_norm", "layer_norm": "layer_norm"}.get(
        m.get("extractor_mode", "default")
    )
    if mode is None:
        raise ValueError(f"fairseq extractor_mode {m['extractor_mode']!r} is not supported")
    conv_layers = m.get(
        "conv_feature_layers", "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2"
    )
    latent_temp = m.get("latent_temp", (2.0, 0.5, 0.999995))
    if isinstance(latent_temp, str):
        latent_temp = parse_spec_string(latent_temp)
    dim = int(m.get("encoder_embed_dim", 768))
    kwargs: dict[str, Any] = dict(
        extractor_conv_layers=conv_layers,
        extractor_mode=mode,
        extractor_conv_bias=bool(m.get("conv_bias", False)),
        feature_grad_mult=float(m.get("feature_grad_mult", 1.0)),
        encoder_embed_dim=dim,
        encoder_layers=int(m.get("encoder_layers", 12)),
        encoder_ffn_embed_dim=int(m.get("encoder_ffn_embed_dim", 3072)),
        encoder_attention_heads=int(m.get("encoder_attention_heads", 12)),
        layer_norm_first=bool(m.get("layer_norm_first", False)),
        conv_pos=int(m.get("conv_pos", 128)),
        conv_pos_groups=int(m.get("conv_pos_groups", 16)),
        dropout=float(m.get("dropout", 0.1)),
        attention_dropout=float(m.get("attention_dropout", 0.1)),
        activation_dropout=float(m.get("activation_dropout", 0.0)),
        dropout_input=float(m.get("dropout_input", 0.0)),
        dropout_features=float(m.get("dropout_features", 0.0)),
        layerdrop=float(m.get("encoder_layerdrop", m.get("layerdrop", 0.0))),
        mask_prob=float(m.get("mask_prob", 0.65)),
        mask_length=int(m.get("mask_length", 10)),
        mask_channel_prob=float(m.get("mask_channel_prob", 0.0)),
        mask_channel_length=int(m.get("mask_channel_length", 10)),
        final_dim=int(m.get("final_dim", 0)) or dim,
        latent_vars=int(m.get("latent_vars", 320)),
        latent_groups=int(m.get("latent_groups", 2)),
        latent_dim=int(m.get("latent_dim", 0)),
        latent_temp=tuple(latent_temp),
        num_negatives=int(m.get("num_negatives", 100)),
        logit_temp=float(m.get("logit_temp", 0.1)),
    )
    for name in ("hourglass", "shorten", "upsample", "shorten_pools_padding"):  # our to_fairseq
        if m.get(name) is not None:
            kwargs[name] = m[name]
    weights = (criterion_cfg or {}).get("loss_weights")
    if weights:
        kwargs["diversity_weight"], kwargs["feature_penalty_weight"] = map(float, weights[:2])
    return ModelConfig(**kwargs)


def load_fairseq_checkpoint(checkpoint: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A fairseq-style checkpoint dict (fairseq's or NVIDIA's), given the dict or its path; a
    missing module needed to unpickle it, or a dict without ``model``, is an error naming it."""
    if isinstance(checkpoint, (str, Path)):
        path = checkpoint
        try:
            # fairseq pickles its config objects, so the full unpickler is needed
            checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        except ModuleNotFoundError as e:
            raise ModuleNotFoundError(
                f"{path}: unpickling this checkpoint needs the module {e.name!r}; install it "
                "(fairseq checkpoints pickle omegaconf configs) and try again"
            ) from e
    if "model" not in checkpoint:
        raise ValueError("not a fairseq checkpoint: no 'model' key")
    return checkpoint


def model_from_fairseq(
    checkpoint: dict[str, Any] | str | Path,
) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Our model from a fairseq wav2vec 2.0 checkpoint; ``convert.from_fairseq`` also takes
    NVIDIA's.

    Accepts the checkpoint dict or its path, with the config under ``cfg`` (hydra era) or
    ``args`` (argparse era). A fine-tuned ``wav2vec_ctc`` checkpoint (``w2v_encoder.*`` keys)
    gives a :class:`Wav2Vec2Ctc`; a pretraining checkpoint a :class:`Wav2Vec2Pretrain`.
    """
    ckpt = load_fairseq_checkpoint(checkpoint)
    if ckpt.get("cfg") is not None:
        cfg = _as_dict(ckpt["cfg"])
        model_cfg, criterion_cfg = _as_dict(cfg.get("model")), _as_dict(cfg.get("criterion"))
    elif ckpt.get("args") is not None:
        model_cfg = criterion_cfg = _as_dict(ckpt["args"])
    else:
        raise ValueError("fairseq checkpoint has neither 'cfg' nor 'args'")
    sd = dict(ckpt["model"])
    finetuned = is_finetuned_state(sd)
    if finetuned:
        w2v_args = _as_dict(model_cfg.get("w2v_args"))
        pre_cfg = _as_dict(w2v_args.get("model")) if "model" in w2v_args else w2v_args
        if not pre_cfg:
            raise ValueError("fine-tuned fairseq checkpoint without w2v_args (pretraining config)")
        overrides = {
            k: model_cfg[k]
            for k in (
                "mask_prob",
                "mask_length",
                "mask_channel_prob",
                "mask_channel_length",
                "dropout",
                "attention_dropout",
                "activation_dropout",
                "dropout_input",
                "feature_grad_mult",
            )
            if k in model_cfg
        }
        if "layerdrop" in model_cfg:
            overrides["encoder_layerdrop"] = model_cfg["layerdrop"]
        config = config_from_fairseq({**pre_cfg, **overrides}, None)
        sd = unwrap_finetuned_state(sd, "fine-tuned fairseq checkpoint")
    else:
        config = config_from_fairseq(model_cfg, criterion_cfg)
    return load_converted(config, fairseq_state_to_ours(sd))


def is_finetuned_state(sd: dict[str, Tensor]) -> bool:
    """Whether ``sd`` is a fine-tuned (``Wav2VecCtc``) state dict: its model is wrapped in
    ``w2v_encoder.w2v_model.`` (fairseq's and NVIDIA's layout)."""
    return any(k.startswith(_FINETUNED_PREFIX) for k in sd)


def unwrap_finetuned_state(sd: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """A fine-tuned state dict's keys as the inner model's, with the CTC projection as
    ``ctc.``; a key of neither part raises ValueError naming ``what`` (the checkpoint kind)."""
    inner = {}
    for k, v in sd.items():
        if k.startswith(_FINETUNED_PREFIX):
            inner[k[len(_FINETUNED_PREFIX) :]] = v
        elif k.startswith(_CTC_HEAD):
            inner["ctc." + k[len(_CTC_HEAD) :]] = v
        else:
            raise ValueError(f"unexpected key in {what}: {k!r}")
    return inner


def wrap_finetuned_state(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """The inverse of :func:`unwrap_finetuned_state`: inner-model keys (``ctc.`` the head) in
    the fine-tuned layout."""
    return {
        (_CTC_HEAD + k[4:]) if k.startswith("ctc.") else _FINETUNED_PREFIX + k: v
        for k, v in sd.items()
    }


def load_converted(config: ModelConfig, ours: dict[str, Tensor]) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Build the model the converted weights describe and load them.

    Every backbone weight must be present; only what an encoder-only source lacks (quantizer,
    projections, ``mask_emb``) keeps its fresh initialisation.
    """
    if "ctc_head.weight" in ours:
        model = build_model(config, "ctc", vocab_size=ours["ctc_head.weight"].shape[0])
    else:
        model = build_model(config, "pretrain")
    result = model.load_state_dict(ours, strict=False)
    heads = ("quantizer.", "project_q.", "final_proj.", "mask_emb")
    missing = [k for k in result.missing_keys if not k.startswith(heads)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"converted weights do not fit {type(model).__name__}: "
            f"missing {missing}, unexpected {list(result.unexpected_keys)}"
        )
    return model


def fairseq_model_config(cfg: ModelConfig) -> dict[str, Any]:
    """fairseq ``wav2vec2`` model config for our config (the inverse of config_from_fairseq)."""
    spec = " + ".join(f"[({d}, {k}, {s})]" for d, k, s in cfg.extractor_conv_layers)
    out = {
        "_name": "wav2vec2",
        "extractor_mode": "default" if cfg.extractor_mode == "group_norm" else "layer_norm",
        "conv_feature_layers": spec,
        "conv_bias": cfg.extractor_conv_bias,
        "feature_grad_mult": cfg.feature_grad_mult,
        "encoder_embed_dim": cfg.encoder_embed_dim,
        "encoder_layers": cfg.encoder_layers,
        "encoder_ffn_embed_dim": cfg.encoder_ffn_embed_dim,
        "encoder_attention_heads": cfg.encoder_attention_heads,
        "activation_fn": "gelu",
        "layer_norm_first": cfg.layer_norm_first,
        "conv_pos": cfg.conv_pos,
        "conv_pos_groups": cfg.conv_pos_groups,
        "dropout": cfg.dropout,
        "attention_dropout": cfg.attention_dropout,
        "activation_dropout": cfg.activation_dropout,
        "dropout_input": cfg.dropout_input,
        "dropout_features": cfg.dropout_features,
        "encoder_layerdrop": cfg.layerdrop,
        "mask_prob": cfg.mask_prob,
        "mask_length": cfg.mask_length,
        "mask_channel_prob": cfg.mask_channel_prob,
        "mask_channel_length": cfg.mask_channel_length,
        "final_dim": cfg.final_dim,
        "latent_vars": cfg.latent_vars,
        "latent_groups": cfg.latent_groups,
        "latent_dim": cfg.latent_dim,
        "latent_temp": list(cfg.latent_temp),
        "num_negatives": cfg.num_negatives,
        "logit_temp": cfg.logit_temp,
        "quantize_targets": True,
        "quantize_input": False,
        "target_glu": False,
    }
    if cfg.hourglass is not None:  # not fairseq: kept so our own converter round-trips
        out.update(
            hourglass=cfg.to_dict()["hourglass"],
            shorten=cfg.shorten,
            upsample=cfg.upsample,
            shorten_pools_padding=cfg.shorten_pools_padding,
        )
    return out


def to_fairseq(
    model: Wav2Vec2Pretrain | Wav2Vec2Ctc, path: str | Path | None = None
) -> dict[str, Any]:
    """A fairseq-format checkpoint dict (``cfg`` + ``model``) of our model; saved if ``path``.

    A CTC model is written as fairseq's ``wav2vec_ctc`` (``w2v_encoder.w2v_model.*`` and
    ``w2v_encoder.proj``). Hourglass models keep extra keys fairseq itself cannot load.
    """
    cfg = model.cfg
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    fs = ours_to_fairseq_state(sd, cfg.extractor_mode)
    model_cfg = fairseq_model_config(cfg)
    criterion = {
        "_name": "wav2vec",
        "infonce": True,
        "loss_weights": [cfg.diversity_weight, cfg.feature_penalty_weight],
    }
    if isinstance(model, Wav2Vec2Ctc):
        fs = wrap_finetuned_state(fs)
        model_cfg = {
            "_name": "wav2vec_ctc",
            "w2v_args": {"model": model_cfg},
            "mask_prob": cfg.mask_prob,
            "mask_length": cfg.mask_length,
            "mask_channel_prob": cfg.mask_channel_prob,
            "mask_channel_length": cfg.mask_channel_length,
            "layerdrop": cfg.layerdrop,
            "final_dropout": cfg.final_dropout,
        }
        criterion = {"_name": "ctc"}
    ckpt = {"cfg": {"model": model_cfg, "criterion": criterion}, "model": fs}
    if path is not None:
        atomic_save(ckpt, path)
    return ckpt
