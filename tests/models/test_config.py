"""ModelConfig: presets, YAML/dict round trips, validation."""

import pytest

from hourglass_w2v2.config_fields import ConfigError
from hourglass_w2v2.models import PRESETS, ModelConfig, build_model
from hourglass_w2v2.models.config import hourglass_num_layers, parse_conv_layers, parse_hourglass


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_round_trips_through_dict_and_yaml(name, tmp_path):
    cfg = ModelConfig.preset(name)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    cfg.to_yaml(tmp_path / "m.yaml")
    assert ModelConfig.from_yaml(tmp_path / "m.yaml") == cfg


def test_presets_have_the_published_shapes():
    base, large = ModelConfig.preset("base"), ModelConfig.preset("large")
    assert (base.encoder_embed_dim, base.encoder_layers, base.layer_norm_first) == (768, 12, False)
    assert (large.encoder_embed_dim, large.encoder_layers, large.layer_norm_first) == (
        1024,
        24,
        True,
    )
    assert ModelConfig.preset("base-hourglass").hourglass == (2, (8, 4), 2)
    assert base.extractor_conv_layers == [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def test_parameter_counts():
    def count(name):
        return sum(p.numel() for p in build_model(ModelConfig.preset(name)).parameters())

    assert 2e6 < count("tiny") < 6e6
    # fairseq's wav2vec2 Base has 95.0M parameters including quantizer and heads
    assert abs(count("base") - 95.04e6) < 0.1e6


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="encoder_layres"):
        ModelConfig.from_dict({"encoder_layres": 3})
    with pytest.raises(ValueError, match="hidden_size"):
        ModelConfig.preset("tiny", hidden_size=3)


def test_yaml_error_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("mask_prb: 0.5\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*mask_prb"):
        ModelConfig.from_yaml(path)


def test_hourglass_layer_count_must_match():
    with pytest.raises(ValueError, match="has 11 layers"):
        ModelConfig.preset("base", hourglass=[2, [7, 4], 2])


def test_spec_parsing():
    assert parse_conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 2") == [
        (512, 10, 5),
        (512, 3, 2),
        (512, 3, 2),
    ]
    assert parse_hourglass("[2, (8, 4), 2]") == (2, (8, 4), 2)
    nested = parse_hourglass([1, [[1, [2, 2], 1], 2], 1])
    assert nested == (1, ((1, (2, 2), 1), 2), 1)
    assert hourglass_num_layers(nested) == 6
    assert parse_hourglass(None) is None and parse_hourglass([]) is None
    with pytest.raises(ValueError):
        parse_conv_layers("__import__('os')")
    with pytest.raises(ValueError):
        parse_hourglass([2, 8, 2])


def test_from_yaml_reads_exponent_floats_as_numbers(tmp_path):
    """YAML 1.1 reads ``5e-2`` (no dot) as a string; a hand-written model config uses it."""
    path = tmp_path / "m.yaml"
    path.write_text("encoder_layers: 2\ndropout: 5e-2\nfeature_grad_mult: 1e-1\n")
    cfg = ModelConfig.from_yaml(path)
    assert cfg.dropout == 0.05 and isinstance(cfg.dropout, float)
    assert cfg.feature_grad_mult == 0.1 and isinstance(cfg.feature_grad_mult, float)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dropout", 1.5, r"'dropout' = 1.5 is out of range: must be >= 0 and < 1$"),
        ("layerdrop", 1.0, r"'layerdrop' = 1.0 is out of range: must be >= 0 and < 1$"),
        ("attention_dropout", -0.2, r"'attention_dropout' = -0.2 is out of range: must be >= 0"),
        ("final_dropout", "0.1", r"'final_dropout' = '0.1' \(str\) is not a number"),
        ("mask_prob", 1.7, r"'mask_prob' = 1.7 is out of range: must be >= 0 and <= 1$"),
        ("mask_channel_prob", -0.1, r"'mask_channel_prob' = -0.1 is out of range: must be >= 0"),
        ("mask_length", 0, r"'mask_length' = 0 is out of range: must be >= 1$"),
        ("min_masks", -1, r"'min_masks' = -1 is out of range: must be >= 0$"),
        ("num_negatives", 2.5, r"'num_negatives' = 2.5 \(float\) is not an int"),
        ("encoder_attention_heads", 0, r"'encoder_attention_heads' = 0 is out of range"),
        ("latent_groups", True, r"'latent_groups' = True \(bool\) is not an int"),
        ("feature_grad_mult", -0.1, r"'feature_grad_mult' = -0.1 is out of range: must be >= 0$"),
        ("diversity_weight", float("nan"), r"'diversity_weight' = nan is out of range"),
        ("mask_prob", float("nan"), r"'mask_prob' = nan is out of range: must be >= 0 and <= 1"),
        ("logit_temp", 0.0, r"'logit_temp' = 0.0 is out of range: must be > 0$"),
        ("latent_temp", (2.0, 0.5, 1.5), r"'latent_temp\[2\]' = 1.5 is out of range: must be <= 1"),
        ("latent_temp", (2.0, 0.0, 0.9), r"'latent_temp\[1\]' = 0.0 is out of range: must be > 0"),
        ("latent_temp", (2.0, 0.5), r"'latent_temp' = \[2.0, 0.5\] must be a list of 3 values"),
        ("shorten", "max", r"'shorten' = 'max' is not one of avg, linear"),
        ("extractor_conv_bias", 1, r"'extractor_conv_bias' = 1 \(int\) is not a boolean"),
    ],
)
def test_out_of_range_values_are_named(key, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        ModelConfig.preset("tiny-hourglass", **{key: value})
    assert err.value.key.startswith(key)


def test_values_are_coerced_to_their_field_types():
    # YAML's 0 for a float and 4e2 (read as a float) for an int take their fields' types
    cfg = ModelConfig.preset("tiny", dropout=0, num_negatives=4e2, latent_temp=[2, 1, 1])
    assert (cfg.dropout, cfg.num_negatives, cfg.latent_temp) == (0.0, 400, (2.0, 1.0, 1.0))
    assert isinstance(cfg.dropout, float) and isinstance(cfg.num_negatives, int)


def test_range_edges_are_accepted():
    # each bound that the ranges include: a probability of 0, mask_prob 1, frozen extractor
    cfg = ModelConfig.preset(
        "tiny",
        dropout=0.0,
        mask_prob=1.0,
        mask_channel_prob=1.0,
        feature_grad_mult=0.0,
        min_masks=0,
        latent_dim=0,
        latent_temp=(1.0, 1.0, 1.0),
    )
    assert (cfg.mask_prob, cfg.feature_grad_mult, cfg.latent_temp) == (1.0, 0.0, (1.0, 1.0, 1.0))
