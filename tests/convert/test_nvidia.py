"""NVIDIA DeepLearningExamples checkpoints: import, export, round trips, NVIDIA's forward.

State dicts are built here with the key names and shapes of NVIDIA's ``wav2vec2/model.py``
(``Wav2Vec2Model``, ``TransformerEncoder`` with ``layers`` / ``hourglass_layers`` /
``post_layers``, ``Downsampler`` / ``Upsampler`` with a ``linear`` child, ``Wav2VecCtc``), and
``nvidia_forward`` re-implements NVIDIA's forward from such a state dict, independently of our
model code.
"""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from hourglass_w2v2.convert.nvidia import (
    from_nvidia,
    is_nvidia_checkpoint,
    load_nvidia_checkpoint,
    nvidia_state_to_ours,
    ours_to_nvidia_state,
    to_nvidia,
)
from hourglass_w2v2.models.config import ModelConfig
from hourglass_w2v2.models.hourglass import Shorten
from hourglass_w2v2.models.wav2vec2 import Wav2Vec2Ctc, build_model

CONV = [(32, 10, 5), (32, 3, 2), (32, 2, 2)]
DIM, FFN, HEADS, VOCAB = 48, 64, 4, 7
SPECS = {  # name -> (hourglass_transformer, hourglass_resample)
    "vanilla": (None, "naive"),
    "naive": ("[1,(2,3),1]", "naive"),
    "linear": ("[1,(2,3),1]", "linear"),
}
PREFIX = "w2v_encoder.w2v_model."
TINY = dict(  # our ModelConfig overrides for the sizes above
    extractor_conv_layers=CONV,
    encoder_embed_dim=DIM,
    encoder_ffn_embed_dim=FFN,
    encoder_attention_heads=HEADS,
    conv_pos=8,
    conv_pos_groups=4,
)


def _args(kind: str, mode: str = "pretrain", **over) -> dict:
    hourglass, resample = SPECS[kind]
    args = dict(
        mode=mode,
        extractor_mode="default",
        conv_feature_layers="[(32,10,5)]+[(32,3,2)]+[(32,2,2)]",
        conv_bias=False,
        encoder_layers=4,
        encoder_embed_dim=DIM,
        encoder_ffn_embed_dim=FFN,
        encoder_attention_heads=HEADS,
        activation_fn="gelu",
        final_dim=16,
        layer_norm_first=False,
        quantize_targets=True,
        latent_vars=8,
        latent_groups=2,
        latent_dim=0,
        conv_pos=8,
        conv_pos_groups=4,
        latent_temp=[2.0, 0.5, 0.999995],
        loss_weights=[0.1, 10.0],
        hourglass_transformer=hourglass,
        hourglass_resample=resample,
        mha="pyt",
        dropout=0.1,
        attention_dropout=0.0,
        encoder_layerdrop=0.05,
        feature_grad_mult=0.1,
        mask_prob=0.65,
        apply_mask=True,
        final_dropout=0.0,
    )
    args.update(over)
    return args


def _nvidia_state(args: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under NVIDIA's key names and shapes for ``args``."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def put(key, *shape, around=0.0):
        sd[key] = around + 0.2 * torch.randn(*shape, generator=g)

    def linear(key, n_in, n_out):
        put(f"{key}.weight", n_out, n_in)
        put(f"{key}.bias", n_out)

    def norm(key, n):
        put(f"{key}.weight", n, around=1.0)
        put(f"{key}.bias", n)

    in_dim = 1
    for i, (dim, k, _) in enumerate(CONV):
        put(f"feature_extractor.conv_layers.{i}.0.weight", dim, in_dim, k)
        if args["extractor_mode"] == "layer_norm":
            norm(f"feature_extractor.conv_layers.{i}.2.1", dim)
        elif i == 0:
            norm(f"feature_extractor.conv_layers.{i}.2", dim)
        in_dim = dim
    embed = CONV[-1][0]
    linear("post_extract_proj", embed, DIM)
    put("mask_emb", DIM)
    if args["mode"] == "pretrain":
        groups, num_vars, final = args["latent_groups"], args["latent_vars"], args["final_dim"]
        put("quantizer.vars", 1, groups * num_vars, final // groups)
        linear("quantizer.weight_proj", embed, groups * num_vars)
        linear("project_q", final, final)
        linear("final_proj", DIM, final)
    k = args["conv_pos"]
    put("encoder.pos_conv.0.bias", DIM)
    sd["encoder.pos_conv.0.weight_g"] = 0.5 + torch.rand(1, 1, k, generator=g)
    put("encoder.pos_conv.0.weight_v", DIM, DIM // args["conv_pos_groups"], k)
    if args["hourglass_transformer"]:
        n_pre, (n_hourglass, factor), n_post = eval(args["hourglass_transformer"])
        lists = {"layers": n_pre, "hourglass_layers": n_hourglass, "post_layers": n_post}
        if args["hourglass_resample"] == "linear":
            linear("encoder.downsample_layer.linear", DIM * factor, DIM)
            linear("encoder.upsample_layer.linear", DIM, DIM * factor)
    else:
        lists = {"layers": args["encoder_layers"]}
    for name, count in lists.items():
        for i in range(count):
            p = f"encoder.{name}.{i}"
            if args["mha"] == "pyt":
                linear(f"{p}.self_attn.qkv", DIM, 3 * DIM)
            else:
                for proj in ("k_proj", "v_proj", "q_proj"):
                    linear(f"{p}.self_attn.{proj}", DIM, DIM)
            linear(f"{p}.self_attn.out_proj", DIM, DIM)
            norm(f"{p}.self_attn_layer_norm", DIM)
            linear(f"{p}.fc1", DIM, FFN)
            linear(f"{p}.fc2", FFN, DIM)
            norm(f"{p}.final_layer_norm", DIM)
    norm("encoder.layer_norm", DIM)
    norm("layer_norm", embed)
    if args["mode"] == "finetune":
        sd = {PREFIX + key: v for key, v in sd.items()}
        linear("w2v_encoder.proj", DIM, VOCAB)
    return sd


# ------------------------------------------------------------- NVIDIA's forward, from the facts
def _layer(p: dict, x, pad, lnf: bool):
    """TransformerSentenceEncoderLayer on x (T, B, C), key_padding_mask pad (B, T)."""
    t, b, c = x.shape
    if "self_attn.qkv.weight" in p:
        w, bias = p["self_attn.qkv.weight"], p["self_attn.qkv.bias"]
    else:
        w = torch.cat([p[f"self_attn.{n}_proj.weight"] for n in "qkv"])
        bias = torch.cat([p[f"self_attn.{n}_proj.bias"] for n in "qkv"])

    def attention(h):
        q, k, v = F.linear(h, w, bias).chunk(3, dim=-1)
        q = q * (c // HEADS) ** -0.5
        q, k, v = (z.reshape(t, b * HEADS, c // HEADS).transpose(0, 1) for z in (q, k, v))
        scores = torch.bmm(q, k.transpose(1, 2)).view(b, HEADS, t, t)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        probs = scores.softmax(-1).view(b * HEADS, t, t)
        y = torch.bmm(probs, v).transpose(0, 1).reshape(t, b, c)
        return F.linear(y, p["self_attn.out_proj.weight"], p["self_attn.out_proj.bias"])

    def ln(name, h):
        return F.layer_norm(h, (c,), p[f"{name}.weight"], p[f"{name}.bias"], 1e-5)

    def ffn(h):
        h = F.gelu(F.linear(h, p["fc1.weight"], p["fc1.bias"]))
        return F.linear(h, p["fc2.weight"], p["fc2.bias"])

    if lnf:
        x = x + attention(ln("self_attn_layer_norm", x))
        return x + ffn(ln("final_layer_norm", x))
    x = ln("self_attn_layer_norm", x + attention(x))
    return ln("final_layer_norm", x + ffn(x))


def nvidia_encoder_forward(sd: dict, args: dict, x, pad=None):
    """NVIDIA's TransformerEncoder.extract_features (+ final LN) in eval mode: (B, T, C)."""
    sd = {k[len(PREFIX) :] if k.startswith(PREFIX) else k: v for k, v in sd.items()}
    lnf = args["layer_norm_first"]

    def layers(name, h, mask):
        i = 0
        while f"encoder.{name}.{i}.fc1.weight" in sd:
            p = {
                k[len(f"encoder.{name}.{i}.") :]: v
                for k, v in sd.items()
                if k.startswith(f"encoder.{name}.{i}.")
            }
            h = _layer(p, h, mask, lnf)
            i += 1
        return h

    x = x.clone()
    if pad is not None:
        x[pad] = 0
    v, gain = sd["encoder.pos_conv.0.weight_v"], sd["encoder.pos_conv.0.weight_g"]
    weight = gain * v / v.norm(dim=(0, 1), keepdim=True)  # weight_norm with dim=2
    k = weight.shape[-1]
    y = F.conv1d(
        x.transpose(1, 2),
        weight,
        sd["encoder.pos_conv.0.bias"],
        padding=k // 2,
        groups=args["conv_pos_groups"],
    )
    if k % 2 == 0:
        y = y[..., :-1]  # SamePad
    x = x + F.gelu(y).transpose(1, 2)
    norm = (sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])
    if not lnf:
        x = F.layer_norm(x, (x.shape[-1],), *norm, 1e-5)
    x = x.transpose(0, 1)  # T x B x C
    if not args["hourglass_transformer"]:
        x = layers("layers", x, pad)
    else:
        factor = eval(args["hourglass_transformer"])[1][1]
        x = layers("layers", x, pad)
        res = x
        diff = (factor - x.size(0) % factor) % factor
        x = torch.cat([x, x.new_zeros(diff, x.size(1), x.size(2))])
        short_pad = None
        if pad is not None:
            short_pad = torch.cat([pad, pad.new_ones(pad.size(0), diff)], dim=1)
            short_pad = (F.avg_pool1d(short_pad[None].float(), factor, factor).int() > 0)[0]
        if args["hourglass_resample"] == "linear":
            h = x.transpose(0, 1)
            h = h.reshape(h.size(0), h.size(1) // factor, h.size(2) * factor)
            h = F.linear(
                h,
                sd["encoder.downsample_layer.linear.weight"],
                sd["encoder.downsample_layer.linear.bias"],
            )
            x = h.transpose(0, 1)
        else:
            x = F.avg_pool1d(x.permute(1, 2, 0), factor, factor).permute(2, 0, 1)
        x = layers("hourglass_layers", x, short_pad)
        if args["hourglass_resample"] == "linear":
            h = F.linear(
                x.transpose(0, 1),
                sd["encoder.upsample_layer.linear.weight"],
                sd["encoder.upsample_layer.linear.bias"],
            )
            x = h.reshape(h.size(0), h.size(1) * factor, -1).transpose(0, 1)
        else:
            x = x.repeat_interleave(factor, dim=0)
        if diff:
            x = x[:-diff]
        x = layers("post_layers", x + res, pad)
    x = x.transpose(0, 1)
    return F.layer_norm(x, (x.shape[-1],), *norm, 1e-5) if lnf else x


def nvidia_features_forward(sd: dict, args: dict, wav):
    """NVIDIA's Wav2Vec2Model.extract_features on an unpadded batch (B, S) in eval mode."""
    sd = {k[len(PREFIX) :] if k.startswith(PREFIX) else k: v for k, v in sd.items()}
    x = wav[:, None]
    for i, (dim, _, stride) in enumerate(CONV):
        x = F.conv1d(x, sd[f"feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        if i == 0:
            gn = (
                sd["feature_extractor.conv_layers.0.2.weight"],
                sd["feature_extractor.conv_layers.0.2.bias"],
            )
            x = F.group_norm(x, dim, *gn, 1e-5)
        x = F.gelu(x)
    x = x.transpose(1, 2)
    x = F.layer_norm(x, (x.shape[-1],), sd["layer_norm.weight"], sd["layer_norm.bias"], 1e-5)
    x = F.linear(x, sd["post_extract_proj.weight"], sd["post_extract_proj.bias"])
    return nvidia_encoder_forward(sd, args, x)


def _ckpt(args, sd):
    return {
        "args": args,
        "model": sd,
        "ema_model": None,
        "optimizer": None,
        "scaler": None,
        "train_state": {"step": 0},
    }


# ------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("mha", ["pyt", "fairseq"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_imported_encoder_computes_nvidias_forward_on_a_padded_batch(kind, mha):
    args = _args(kind, mha=mha)
    sd = _nvidia_state(args)
    model = from_nvidia(_ckpt(args, sd)).eval()
    torch.manual_seed(1)
    x = torch.randn(3, 13, DIM)  # 13 frames: not a multiple of the factor 3
    pad = torch.arange(13)[None] >= torch.tensor([13, 8, 10])[:, None]
    with torch.no_grad():
        ours = model.encoder(x, pad)
        ref = nvidia_encoder_forward(sd, args, x, pad)
    valid = ~pad
    torch.testing.assert_close(ours[valid], ref[valid], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", list(SPECS))
def test_imported_model_computes_nvidias_features(kind):
    args = _args(kind, mode="finetune")
    sd = _nvidia_state(args)
    model = from_nvidia(_ckpt(args, sd)).eval()
    assert isinstance(model, Wav2Vec2Ctc)
    torch.manual_seed(2)
    wav = torch.randn(2, 1120)  # 1120 samples -> 55 frames, not a multiple of 3
    with torch.no_grad():
        ours = model.encode(wav)
        ref = nvidia_features_forward(sd, args, wav)
        logits = model(wav).logits
    assert ours.shape == (2, 55, DIM)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)
    head = (sd["w2v_encoder.proj.weight"], sd["w2v_encoder.proj.bias"])
    torch.testing.assert_close(logits, F.linear(ref, *head), atol=2e-5, rtol=1e-4)


def test_masked_pooling_would_not_compute_nvidias_function():
    """The reason for ``shorten_pools_padding``: our default shortening differs from NVIDIA's."""
    args = _args("naive")
    sd = _nvidia_state(args)
    model = from_nvidia(_ckpt(args, sd)).eval()
    default = build_model(model.cfg.replace(shorten_pools_padding=False), "pretrain").eval()
    default.load_state_dict(model.state_dict())
    x = torch.randn(1, 13, DIM)
    with torch.no_grad():
        ref = nvidia_encoder_forward(sd, args, x)
        assert torch.allclose(model.encoder(x), ref, atol=2e-5, rtol=1e-4)
        assert not torch.allclose(default.encoder(x), ref, atol=1e-3)


def test_pool_padding_shortening_numbers():
    x = torch.arange(7, dtype=torch.float32).view(1, 7, 1)
    pad = torch.tensor([[False] * 5 + [True] * 2])
    nvidia = Shorten(1, 3, "avg", pool_padding=True)
    assert nvidia(x, None)[0][0, :, 0].tolist() == [1.0, 4.0, 2.0]  # (6 + 0 + 0) / 3
    short, short_pad = nvidia(x, pad)
    assert short[0, :, 0].tolist() == [1.0, 4.0, 2.0] and short_pad.tolist() == [[0, 0, 1]]
    assert Shorten(1, 3, "avg")(x, pad)[0][0, :2, 0].tolist() == [1.0, 3.5]  # default


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_nvidia_to_ours_to_nvidia_is_bit_for_bit(kind, mode):
    args = _args(kind, mode=mode)
    sd = _nvidia_state(args)
    model = from_nvidia(_ckpt(args, sd))
    back, back_args = ours_to_nvidia_state(model)
    assert back.keys() == sd.keys()
    for key, value in sd.items():
        assert back[key].shape == value.shape and torch.equal(back[key], value), key
    for name in (
        "hourglass_transformer",
        "hourglass_resample",
        "encoder_layers",
        "mode",
        "mha",
        "conv_feature_layers",
        "final_dim",
        "latent_vars",
        "encoder_layerdrop",
    ):
        assert back_args[name] == args[name], name


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_ours_to_nvidia_to_ours_is_bit_for_bit(kind, mode, tmp_path):
    torch.manual_seed(0)
    hourglass, resample = SPECS[kind]
    naive = resample == "naive"
    cfg = ModelConfig.preset(
        "tiny",
        **TINY,
        hourglass=hourglass,
        shorten="avg" if naive else "linear",
        upsample="repeat" if naive else "linear",
        shorten_pools_padding=hourglass is not None,
        final_dropout=0.1,
        mask_channel_prob=0.25,
    )
    model = build_model(cfg, "pretrain" if mode == "pretrain" else "ctc", vocab_size=VOCAB)
    with torch.no_grad():  # non-trivial norms and biases, so a swapped tensor would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "wav2vec2_update100.pt"
    to_nvidia(model, path, output_labels="a 10\nb 7\n" if mode == "finetune" else None)
    ckpt = torch.load(path, weights_only=False)
    expected = {"args", "model", "ema_model", "optimizer", "scaler", "train_state"}
    assert set(ckpt) == expected | ({"output_labels"} if mode == "finetune" else set())
    assert is_nvidia_checkpoint(ckpt) and ckpt["args"]["mode"] == mode
    prefix = PREFIX if mode == "finetune" else ""
    lists = ("layers", "hourglass_layers", "post_layers") if hourglass else ("layers",)
    assert {
        k[len(prefix) :].split(".")[1] for k in ckpt["model"] if k.startswith(prefix + "encoder.")
    } >= set(lists)
    cfg2, ours = load_nvidia_checkpoint(path)
    assert cfg2 == cfg
    assert ours.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(ours[key], value), key
    again = from_nvidia(path).eval()
    model.eval()
    wav = torch.randn(2, 1100)
    pad = torch.arange(1100)[None] >= torch.tensor([1100, 700])[:, None]
    with torch.no_grad():
        if mode == "finetune":
            assert torch.equal(again(wav, pad).logits, model(wav, pad).logits)
        else:
            assert torch.equal(again.encode(wav, pad), model.encode(wav, pad))


def test_fairseq_attention_and_masked_extractor_keys_import_too():
    """``--mha fairseq`` q/k/v keys and MaskedBlock / MaskedGroupNorm extractor keys."""
    args = _args("linear", mha="fairseq")
    sd = _nvidia_state(args)
    renamed = {
        k.replace("conv_layers.0.2.", "conv_layers.0.norm._group_norm.").replace(
            ".0.weight", ".conv.weight"
        )
        if k.startswith("feature_extractor")
        else k: v
        for k, v in sd.items()
    }
    cfg, ours = nvidia_state_to_ours({"module." + k: v for k, v in renamed.items()}, args)
    assert torch.equal(
        ours["feature_extractor.conv_layers.0.norm.weight"],
        sd["feature_extractor.conv_layers.0.2.weight"],
    )
    qkv = ours["encoder.layers.1.self_attn.qkv_proj.weight"]  # hourglass layer 0
    assert torch.equal(qkv[:DIM], sd["encoder.hourglass_layers.0.self_attn.q_proj.weight"])
    assert torch.equal(qkv[2 * DIM :], sd["encoder.hourglass_layers.0.self_attn.v_proj.weight"])
    back, _ = ours_to_nvidia_state(from_nvidia(_ckpt(args, sd)), mha="fairseq")
    assert back.keys() == sd.keys()


def test_config_from_args_namespace_and_nvidia_defaults():
    args = _args("naive", mode="finetune", apply_mask=False)
    for name in ("attention_dropout", "feature_grad_mult", "encoder_layerdrop"):
        del args[name]
    cfg, _ = nvidia_state_to_ours(
        _nvidia_state(_args("naive", mode="finetune")), argparse.Namespace(**args)
    )
    assert cfg.hourglass == (1, (2, 3), 1) and (cfg.shorten, cfg.upsample) == ("avg", "repeat")
    assert cfg.shorten_pools_padding
    assert (cfg.attention_dropout, cfg.feature_grad_mult, cfg.layerdrop) == (0.0, 0.1, 0.05)
    assert cfg.mask_prob == 0.0  # NVIDIA fine-tunes without masking unless --apply_mask


def test_normalize_warns_to_set_the_data_option():
    args = _args("vanilla", normalize=True)
    with pytest.warns(UserWarning, match="data.normalize: true"):
        load_nvidia_checkpoint(_ckpt(args, _nvidia_state(args)))


def test_not_an_nvidia_checkpoint(tmp_path):
    path = tmp_path / "fairseq.pt"
    torch.save({"cfg": {"model": {}}, "model": {}}, path)
    with pytest.raises(ValueError, match="fairseq.pt is not an NVIDIA"):
        load_nvidia_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        load_nvidia_checkpoint(tmp_path / "missing.pt")


def test_ema_weights_on_request(tmp_path):
    args = _args("vanilla")
    ckpt = _ckpt(args, _nvidia_state(args, seed=0))
    with pytest.raises(ValueError, match="no EMA weights"):
        load_nvidia_checkpoint(ckpt, use_ema=True)
    ckpt["ema_model"] = _nvidia_state(args, seed=1)
    _, ours = load_nvidia_checkpoint(ckpt, use_ema=True)
    assert torch.equal(ours["mask_emb"], ckpt["ema_model"]["mask_emb"])


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(hourglass_transformer="[1,(3,3),1]", encoder_layers=5), "ask for 3 such layers"),
        (dict(hourglass_transformer="[1,(3,3),1]"), "has 5 layers but encoder_layers=4"),
        (dict(hourglass_transformer="[1,(1,3),2]"), "hourglass_layers.1.* does not fit"),
        (dict(rotary_embeddings=True), "rotary_embeddings"),
        (dict(hourglass_transformer="[1,(2,1),1]"), "factor below 2"),
        (dict(hourglass_resample="naive"), "hourglass_resample='linear'"),
        (dict(activation_fn="relu"), "activation_fn"),
    ],
)
def test_checkpoints_that_do_not_fit_name_the_problem(change, message, tmp_path):
    args = _args("linear")
    sd = _nvidia_state(args)
    path = tmp_path / "bad.pt"
    torch.save(_ckpt({**args, **change}, sd), path)
    with pytest.raises(ValueError, match=message) as err:
        load_nvidia_checkpoint(path)
    assert str(path) in str(err.value)


def test_exports_nvidia_cannot_express_raise():
    masked = build_model(ModelConfig.preset("tiny", hourglass=[1, [2, 3], 1], **TINY))
    with pytest.raises(ValueError, match="strict=False"):
        to_nvidia(masked)
    assert to_nvidia(masked, strict=False)["args"]["hourglass_transformer"] == "[1,(2,3),1]"
    nested = ModelConfig.preset("tiny", hourglass=[1, [[1, [1, 2], 0], 2], 1], **TINY)
    with pytest.raises(ValueError, match="one level"):
        to_nvidia(build_model(nested))
    mixed = ModelConfig.preset("tiny", hourglass=[1, [2, 3], 1], shorten="linear", **TINY)
    with pytest.raises(ValueError, match="alike"):
        to_nvidia(build_model(mixed.replace(shorten_pools_padding=True)))
    factor_one = build_model(ModelConfig.preset("tiny", hourglass=[1, [2, 1], 1], **TINY))
    assert to_nvidia(factor_one)["args"]["hourglass_transformer"] is None  # vanilla


def test_ctc_init_loads_an_nvidia_checkpoint(tmp_path):
    from hourglass_w2v2.training.ctc_task import load_backbone

    args = _args("naive")
    sd = _nvidia_state(args)
    path = tmp_path / "wav2vec2_update400000.pt"
    torch.save(_ckpt(args, sd), path)
    cfg, ours, normalize = load_backbone(path)
    assert normalize is None  # an NVIDIA checkpoint records no data.normalize of ours
    assert cfg.hourglass == (1, (2, 3), 1) and cfg.shorten_pools_padding
    assert torch.equal(ours["encoder.layers.3.fc1.weight"], sd["encoder.post_layers.0.fc1.weight"])
    assert math.isclose(cfg.mask_prob, 0.65)


def test_fairseq_export_keeps_nvidias_shortening():
    from hourglass_w2v2.convert import from_fairseq, to_fairseq

    args = _args("naive")
    model = from_nvidia(_ckpt(args, _nvidia_state(args)))
    assert from_fairseq(to_fairseq(model)).cfg == model.cfg
