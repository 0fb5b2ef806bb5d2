"""NVIDIA DeepLearningExamples wav2vec 2.0 checkpoints <-> our models.

NVIDIA's model (``PyTorch/SpeechRecognition/wav2vec2``) is fairseq's with an optional
one-level hourglass encoder, set by ``args.hourglass_transformer`` (``"[2,(8,4),2]"``) and
``args.hourglass_resample`` (``naive``: mean pooling and repetition, ``linear``: a Linear on k
concatenated frames and a Linear to k frames). Its encoder keeps three layer lists,
``encoder.layers`` (before the shortening), ``encoder.hourglass_layers`` and
``encoder.post_layers``, and the resamplers as ``encoder.downsample_layer.linear`` and
``encoder.upsample_layer.linear``; ours keeps one flat ``encoder.layers`` list and
``encoder.shorteners.0.proj`` / ``encoder.upsamplers.0.proj``. Everything else has fairseq's
names, so keys are renamed to fairseq's and go through :mod:`hourglass_w2v2.convert.fairseq`.

A checkpoint is ``{"args": dict, "model": state_dict, "ema_model", "optimizer", "scaler",
"train_state"}`` (plus ``"output_labels"`` after fine-tuning); ``args`` is flat in both modes
(fine-tuning copies the pretraining model's settings into it) and holds ``mode``. A
fine-tuned model's keys start with ``w2v_encoder.w2v_model.``, its CTC head is
``w2v_encoder.proj``.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hourglass_w2v2.convert.fairseq import (
    config_from_fairseq,
    fairseq_state_to_ours,
    is_finetuned_state,
    load_converted,
    ours_to_fairseq_state,
    unwrap_finetuned_state,
    wrap_finetuned_state,
)
from hourglass_w2v2.fileio import atomic_save
from hourglass_w2v2.models.config import ModelConfig, parse_spec_string
from hourglass_w2v2.models.wav2vec2 import Wav2Vec2Ctc, Wav2Vec2Pretrain

_LAYER_LISTS = ("layers", "hourglass_layers", "post_layers")

#: NVIDIA's argument defaults (wav2vec2/arg_parser.py) for every setting its model reads
NVIDIA_DEFAULT_ARGS: dict[str, Any] = {
    "extractor_mode": "default",
    "conv_feature_layers": "[(512,10,5)]+[(512,3,2)]*4+[(512,2,2)]+[(512,2,2)]",
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "final_dim": 256,
    "layer_norm_first": False,
    "logit_temp": 0.1,
    "quantize_targets": False,
    "quantize_input": False,
    "target_glu": False,
    "quantizer_depth": 1,
    "quantizer_factor": 3,
    "latent_vars": 320,
    "latent_groups": 2,
    "latent_dim": 0,
    "num_negatives": 100,
    "negatives_from_everywhere": False,
    "cross_sample_negatives": 0,
    "codebook_negatives": 0,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "latent_temp": [2.0, 0.5, 0.999995],
    "normalize": False,
    "loss_weights": [0.1, 10.0],
    "infonce": False,
    "use_spectrogram_features": False,
    "rotary_embeddings": False,
    "hourglass_transformer": None,
    "hourglass_resample": "naive",
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "dropout_input": 0.1,
    "dropout_features": 0.1,
    "apply_mask": False,
    "mask_length": 10,
    "mask_prob": 0.5,
    "require_same_masks": True,
    "mask_selection": "static",
    "mask_other": 0,
    "no_mask_overlap": False,
    "mask_min_space": 1,
    "mask_channel_length": 10,
    "mask_channel_prob": 0.0,
    "mask_channel_before": False,
    "mask_channel_selection": "static",
    "mask_channel_other": 0,
    "no_mask_channel_overlap": False,
    "mask_channel_min_space": 1,
    "mask_dropout": 0.0,
    "feature_grad_mult": 0.1,
    "encoder_layerdrop": 0.05,
    "final_dropout": 0.0,
    "freeze_finetune_updates": 0,
    "blank_weight": 0,
    "blank_mode": "add",
    "mha": "fairseq",
    "fp32_transformer_layernorm": False,
    "fp32_mha_softmax": False,
    "fp32_cosine_sim": False,
    "fp32_pos_conv": False,
    "fp32_conv_norms": False,
}

# settings NVIDIA's args and our ModelConfig name alike
_SAME_NAMES = (
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_ffn_embed_dim",
    "encoder_attention_heads",
    "final_dim",
    "layer_norm_first",
    "logit_temp",
    "latent_vars",
    "latent_groups",
    "latent_dim",
    "num_negatives",
    "conv_pos",
    "conv_pos_groups",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "dropout_input",
    "dropout_features",
    "mask_length",
    "mask_prob",
    "mask_channel_length",
    "mask_channel_prob",
    "feature_grad_mult",
    "final_dropout",
)

# NVIDIA settings with no equivalent here, and the one value we implement
_UNSUPPORTED = {
    "use_spectrogram_features": False,
    "rotary_embeddings": False,
    "quantize_input": False,
    "quantizer_depth": 1,
}


def _args_dict(args: Any) -> dict[str, Any]:
    """NVIDIA saves ``args.__dict__``; older runs may pickle the Namespace itself."""
    if isinstance(args, argparse.Namespace):
        return vars(args)
    if isinstance(args, dict):
        return args
    raise ValueError(f"NVIDIA checkpoint 'args' must be a dict or Namespace, got {type(args)}")


def is_nvidia_checkpoint(checkpoint: Any) -> bool:
    """True for a DeepLearningExamples checkpoint: flat ``args`` holding ``mode``.

    This is the test NVIDIA's own ``inference.py`` uses to tell its checkpoints from fairseq's.
    """
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        return False
    args = checkpoint.get("args")
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    return isinstance(args, dict) and "mode" in args


def _parse_nvidia_hourglass(spec: Any) -> tuple[int, int, int, int] | None:
    """``"[2,(8,4),2]"`` -> (n_pre, n_hourglass, factor, n_post); None for a vanilla encoder."""
    if not spec:
        return None
    value = parse_spec_string(spec) if isinstance(spec, str) else spec
    try:
        n_pre, (n_hourglass, factor), n_post = value
        counts = (int(n_pre), int(n_hourglass), int(factor), int(n_post))
    except (TypeError, ValueError):
        raise ValueError(
            f"NVIDIA args.hourglass_transformer={spec!r}: expected one level "
            "'[n_pre,(n_hourglass,factor),n_post]' of integers, as NVIDIA's TransformerEncoder "
            "builds"
        ) from None
    if counts[2] < 2:
        # NVIDIA still adds the residual around a factor-1 "hourglass"; our factor 1 is vanilla
        raise ValueError(
            f"NVIDIA args.hourglass_transformer={spec!r}: a shortening factor below 2 is not "
            "supported (NVIDIA adds a residual our factor-1 level does not have)"
        )
    return counts


def config_from_nvidia(args: Any) -> ModelConfig:
    """Our :class:`ModelConfig` for the ``args`` of a DeepLearningExamples checkpoint.

    Missing settings take NVIDIA's argument defaults (:data:`NVIDIA_DEFAULT_ARGS`, which differ
    from fairseq's: e.g. ``attention_dropout`` 0.0). An hourglass encoder pools padding frames
    as NVIDIA does (``shorten_pools_padding``). Settings we do not implement raise ValueError
    naming them.
    """
    a = {**NVIDIA_DEFAULT_ARGS, **_args_dict(args)}
    for name, ok in _UNSUPPORTED.items():
        if a[name] != ok:
            raise ValueError(
                f"NVIDIA args.{name}={a[name]!r} is not supported: this converter needs {ok!r}"
            )
    if a["mha"] not in ("fairseq", "pyt"):
        raise ValueError(f"NVIDIA args.mha={a['mha']!r}: expected 'fairseq' or 'pyt'")
    fs = {k: a[k] for k in NVIDIA_DEFAULT_ARGS if k not in _UNSUPPORTED}
    # a fine-tuned model has no quantizer, so its (copied) quantize_targets does not matter;
    # a pretrained one without it has no quantizer either, which the state dict reveals
    fs.pop("quantize_targets")
    if isinstance(fs["latent_temp"], str):
        fs["latent_temp"] = parse_spec_string(fs["latent_temp"])
    hourglass = _parse_nvidia_hourglass(a["hourglass_transformer"])
    if hourglass is not None:
        if a["layer_norm_first"]:
            raise ValueError("NVIDIA args: hourglass_transformer with layer_norm_first=True")
        if a["hourglass_resample"] not in ("naive", "linear"):
            raise ValueError(
                f"NVIDIA args.hourglass_resample={a['hourglass_resample']!r}: "
                "expected 'naive' or 'linear'"
            )
        n_pre, n_hourglass, factor, n_post = hourglass
        naive = a["hourglass_resample"] == "naive"
        fs.update(
            hourglass=[n_pre, [n_hourglass, factor], n_post],
            shorten="avg" if naive else "linear",
            upsample="repeat" if naive else "linear",
        )
    try:
        cfg = config_from_fairseq(fs, {"loss_weights": a["loss_weights"]})
    except ValueError as e:
        raise ValueError(f"NVIDIA args: {e}") from None
    extra: dict[str, Any] = {"final_dropout": float(a["final_dropout"])}
    if hourglass is not None:
        extra["shorten_pools_padding"] = True
    if a.get("mode") == "finetune" and not a["apply_mask"]:
        extra.update(mask_prob=0.0, mask_channel_prob=0.0)  # NVIDIA masks only with apply_mask
    return cfg.replace(**extra)


def _layer_offsets(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    """NVIDIA layer list -> (index of its first layer in our flat list, its length)."""
    if cfg.hourglass is None:
        return {"layers": (0, cfg.encoder_layers)}
    n_pre, (n_hourglass, _), n_post = cfg.hourglass
    return {
        "layers": (0, n_pre),
        "hourglass_layers": (n_pre, n_hourglass),
        "post_layers": (n_pre + n_hourglass, n_post),
    }


def nvidia_state_to_ours(
    nvidia_sd: dict[str, Tensor], args: Any
) -> tuple[ModelConfig, dict[str, Tensor]]:
    """``(ModelConfig, state_dict)`` in our names for an NVIDIA state dict and its ``args``.

    Accepts pretraining (``Wav2Vec2Model``) and fine-tuned (``Wav2VecCtc``) state dicts, with
    fairseq's q/k/v or ``--mha pyt``'s fused ``qkv`` attention, ``nn.Sequential`` or masked
    (``conv``/``norm``) extractor blocks, and DDP ``module.`` prefixes. A key or layer count
    that does not fit ``args`` raises ValueError saying which.
    """
    cfg = config_from_nvidia(args)
    sd = {k.replace("module.", ""): v for k, v in nvidia_sd.items()}
    if is_finetuned_state(sd):
        sd = unwrap_finetuned_state(sd, "a fine-tuned NVIDIA state dict")
    offsets = _layer_offsets(cfg)
    found: dict[str, set[int]] = {}
    fairseq_sd: dict[str, Tensor] = {}
    for key, value in sd.items():
        m = re.fullmatch(r"encoder\.(layers|hourglass_layers|post_layers)\.(\d+)\.(.+)", key)
        if m:
            group, index, rest = m.group(1), int(m.group(2)), m.group(3)
            if group not in offsets or index >= offsets[group][1]:
                raise ValueError(
                    f"NVIDIA state dict key {key!r} does not fit args.hourglass_transformer="
                    f"{_args_dict(args).get('hourglass_transformer')!r} / encoder_layers="
                    f"{cfg.encoder_layers}; the checkpoint's args do not describe its weights"
                )
            found.setdefault(group, set()).add(index)
            key = f"encoder.layers.{offsets[group][0] + index}.{rest}"
            qkv = re.fullmatch(r"(.+)\.self_attn\.qkv\.(weight|bias)", key)
            if qkv:  # --mha pyt: rows are q, k, v
                for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                    fairseq_sd[f"{qkv.group(1)}.self_attn.{name}_proj.{qkv.group(2)}"] = part
                continue
        elif key.startswith(("encoder.downsample_layer.linear.", "encoder.upsample_layer.linear.")):
            if cfg.hourglass is None or cfg.shorten != "linear":
                raise ValueError(
                    f"NVIDIA state dict has {key!r} but args do not ask for a linear-resampling "
                    "hourglass (hourglass_transformer, hourglass_resample='linear')"
                )
            which = "shorteners" if key.startswith("encoder.down") else "upsamplers"
            key = f"encoder.{which}.0.proj.{key.rsplit('.', 1)[1]}"
        else:
            # masked extractor blocks (MaskedBlock) name their children conv / norm, and
            # MaskedGroupNorm keeps its weights in a _group_norm child
            key = re.sub(r"^(feature_extractor\.conv_layers\.\d+)\.conv\.", r"\1.0.", key)
            key = re.sub(
                r"^(feature_extractor\.conv_layers\.\d+)\.norm\.(_group_norm\.)?", r"\1.2.", key
            )
        fairseq_sd[key] = value
    for group, (_, count) in offsets.items():
        if count and found.get(group, set()) != set(range(count)):
            raise ValueError(
                f"NVIDIA state dict has encoder.{group} {sorted(found.get(group, []))}, but args "
                f"ask for {count} such layers"
            )
    if "project_q.weight" in fairseq_sd and "quantizer.vars" not in fairseq_sd:
        raise ValueError("NVIDIA pretraining checkpoint without quantize_targets is not supported")
    try:
        ours = fairseq_state_to_ours(fairseq_sd)
    except ValueError as e:
        raise ValueError(f"NVIDIA state dict: {e}") from None
    if "feature_proj.weight" not in ours and cfg.extractor_dim == cfg.encoder_embed_dim:
        # NVIDIA has no post_extract_proj when the sizes agree: the identity is the same map
        ours["feature_proj.weight"] = torch.eye(cfg.encoder_embed_dim)
        ours["feature_proj.bias"] = torch.zeros(cfg.encoder_embed_dim)
    return cfg, ours


def _read(checkpoint: dict[str, Any] | str | Path) -> tuple[dict[str, Any], str]:
    """The checkpoint dict and a name for messages."""
    if isinstance(checkpoint, (str, Path)):
        name = str(checkpoint)
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"NVIDIA checkpoint {name} does not exist")
        # NVIDIA pickles plain dicts, but older runs an argparse.Namespace
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
    else:
        name = "checkpoint"
    if not is_nvidia_checkpoint(checkpoint):
        raise ValueError(
            f"{name} is not an NVIDIA DeepLearningExamples checkpoint: expected a dict with "
            "'model' and an 'args' dict holding 'mode'"
        )
    return checkpoint, name


def load_nvidia_checkpoint(
    checkpoint: dict[str, Any] | str | Path, use_ema: bool = False
) -> tuple[ModelConfig, dict[str, Tensor]]:
    """``(ModelConfig, state_dict)`` of a DeepLearningExamples checkpoint (dict or path).

    ``use_ema`` takes the ``ema_model`` weights (trained with ``--ema``) instead of ``model``.
    Errors name the file; a model trained on normalised audio (``--normalize``) warns, since
    that is a data setting here (``data.normalize``), not part of the model.
    """
    ckpt, name = _read(checkpoint)
    if _args_dict(ckpt["args"]).get("normalize"):
        warnings.warn(
            f"{name} was trained on zero-mean unit-variance audio (NVIDIA --normalize): "
            "set data.normalize: true when fine-tuning or decoding with it",
            stacklevel=2,
        )
    sd = ckpt["model"]
    if use_ema:
        if ckpt.get("ema_model") is None:
            raise ValueError(f"{name}: no EMA weights ('ema_model' is empty); drop use_ema")
        sd = ckpt["ema_model"]
    try:
        return nvidia_state_to_ours(sd, ckpt["args"])
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def from_nvidia(
    checkpoint: dict[str, Any] | str | Path, use_ema: bool = False
) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Our model from a DeepLearningExamples checkpoint: a :class:`Wav2Vec2Ctc` for a
    fine-tuned one (``w2v_encoder.*`` keys), else a :class:`Wav2Vec2Pretrain`."""
    cfg, ours = load_nvidia_checkpoint(checkpoint, use_ema)
    return load_converted(cfg, ours)


def nvidia_args(cfg: ModelConfig, mode: str = "pretrain", mha: str = "pyt") -> dict[str, Any]:
    """NVIDIA ``args`` for our config: every setting NVIDIA's model reads, its defaults
    elsewhere. Raises ValueError for what NVIDIA's encoder cannot express."""
    hourglass = None
    resample = "naive"
    if cfg.hourglass is not None:
        n_pre, (inner, factor), n_post = cfg.hourglass
        if not isinstance(inner, int):
            raise ValueError(f"hourglass {cfg.hourglass}: NVIDIA's encoder has one level only")
    if cfg.hourglass is not None and factor > 1:  # a factor-1 level is the vanilla encoder
        pair = (cfg.shorten, cfg.upsample)
        if pair not in (("avg", "repeat"), ("linear", "linear")):
            raise ValueError(
                f"shorten={cfg.shorten!r} with upsample={cfg.upsample!r}: NVIDIA resamples "
                "both ways alike ('naive' = avg + repeat, 'linear' = linear + linear)"
            )
        if cfg.layer_norm_first:
            raise ValueError("NVIDIA's hourglass encoder is post-LN only (layer_norm_first)")
        hourglass = f"[{n_pre},({inner},{factor}),{n_post}]"
        resample = "naive" if cfg.shorten == "avg" else "linear"
    if mha not in ("fairseq", "pyt"):
        raise ValueError(f"mha must be 'fairseq' or 'pyt', got {mha!r}")
    spec = "+".join(f"[({d},{k},{s})]" for d, k, s in cfg.extractor_conv_layers)
    args = dict(NVIDIA_DEFAULT_ARGS)
    args.update({name: getattr(cfg, name) for name in _SAME_NAMES})
    args.update(
        mode=mode,
        extractor_mode="default" if cfg.extractor_mode == "group_norm" else "layer_norm",
        conv_feature_layers=spec,
        conv_bias=cfg.extractor_conv_bias,
        quantize_targets=True,
        latent_temp=list(cfg.latent_temp),
        loss_weights=[cfg.diversity_weight, cfg.feature_penalty_weight],
        infonce=True,
        hourglass_transformer=hourglass,
        hourglass_resample=resample,
        apply_mask=mode == "finetune" and (cfg.mask_prob > 0 or cfg.mask_channel_prob > 0),
        encoder_layerdrop=cfg.layerdrop,
        mha=mha,
    )
    return args


def ours_to_nvidia_state(
    model: Wav2Vec2Pretrain | Wav2Vec2Ctc, mha: str = "pyt", strict: bool = True
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state_dict, args)`` of our model in NVIDIA's layout (the inverse of
    :func:`nvidia_state_to_ours`).

    ``mha="pyt"`` (NVIDIA's published recipes) writes fused ``self_attn.qkv``, ``"fairseq"``
    separate q/k/v. With ``strict``, an hourglass model that masks padding out of its
    shortening (``shorten_pools_padding=False``) raises ValueError: NVIDIA's code would pool
    the padding frames, a different function on padded or odd-length batches.
    """
    cfg = model.cfg
    finetuned = isinstance(model, Wav2Vec2Ctc)
    args = nvidia_args(cfg, "finetune" if finetuned else "pretrain", mha)
    if strict and args["hourglass_transformer"] and not cfg.shorten_pools_padding:
        raise ValueError(
            "this hourglass model leaves padding out of its shortening "
            "(shorten_pools_padding=False) and NVIDIA's code pools it: outputs on padded "
            "batches, and for 'avg' on lengths that are not a multiple of the factor, would "
            "differ; pass strict=False to export anyway"
        )
    ours = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if cfg.extractor_dim == cfg.encoder_embed_dim:
        # NVIDIA builds no post_extract_proj then: only an identity one can be left out
        w, b = ours.pop("feature_proj.weight"), ours.pop("feature_proj.bias")
        if not (torch.equal(w, torch.eye(len(w))) and not b.any()):
            raise ValueError(
                "extractor and encoder sizes are equal, so NVIDIA's model has no feature "
                "projection, but this model's feature_proj is not the identity"
            )
    qkv = {k: ours.pop(k) for k in list(ours) if ".self_attn.qkv_proj." in k}
    fs = ours_to_fairseq_state(ours, cfg.extractor_mode)
    offsets = (
        _layer_offsets(cfg)
        if args["hourglass_transformer"]
        else {"layers": (0, cfg.encoder_layers)}
    )
    out: dict[str, Tensor] = {}

    def nvidia_layer(index: int) -> str:
        for group, (start, count) in offsets.items():
            if start <= index < start + count:
                return f"encoder.{group}.{index - start}"
        raise AssertionError(index)

    for key, value in {**fs, **qkv}.items():
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key)
        if m:
            rest = m.group(2)
            key = f"{nvidia_layer(int(m.group(1)))}.{rest}"
            if rest.startswith("self_attn.qkv_proj.") and mha == "pyt":
                key = key.replace("qkv_proj", "qkv")
            elif rest.startswith("self_attn.qkv_proj."):
                for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                    out[key.replace("qkv_proj", f"{name}_proj")] = part.clone()
                continue
        elif key.startswith("encoder.shorteners.0.proj."):
            key = "encoder.downsample_layer.linear." + key.rsplit(".", 1)[1]
        elif key.startswith("encoder.upsamplers.0.proj."):
            key = "encoder.upsample_layer.linear." + key.rsplit(".", 1)[1]
        out[key] = value
    if finetuned:
        out = wrap_finetuned_state(out)
    return out, args


def to_nvidia(
    model: Wav2Vec2Pretrain | Wav2Vec2Ctc,
    path: str | Path | None = None,
    output_labels: str | None = None,
    mha: str = "pyt",
    strict: bool = True,
) -> dict[str, Any]:
    """A DeepLearningExamples checkpoint dict of our model (saved if ``path``).

    It has the top-level keys NVIDIA's ``Checkpointer`` writes (``args``, ``model``,
    ``ema_model``, ``optimizer``, ``scaler``, ``train_state``), empty where we have nothing to
    give. ``output_labels``, the text of NVIDIA's fairseq-style label dictionary, is stored for
    a CTC model; NVIDIA's ``inference.py`` needs it or ``--labels_path``.
    """
    sd, args = ours_to_nvidia_state(model, mha, strict)
    ckpt: dict[str, Any] = {
        "args": args,
        "model": sd,
        "ema_model": None,
        "optimizer": None,
        "scaler": None,
        "train_state": {
            "step": 0,
            "epoch": 1,
            "best_val_loss": float("inf"),
            "best_val_wer": float("inf"),
        },
    }
    if output_labels:
        ckpt["output_labels"] = output_labels
    if path is not None:
        atomic_save(ckpt, path)
    return ckpt
