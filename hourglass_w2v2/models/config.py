"""One dataclass describing a wav2vec 2.0 model (vanilla or hourglass), with named presets.

Field names follow fairseq's ``Wav2Vec2Config`` where one exists, so a fairseq user can read
a config without a glossary. A preset is plain data: ``ModelConfig.preset("base-hourglass")``.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hourglass_w2v2.config_fields import (
    Bounds,
    ConfigError,
    check_bounds,
    check_fields,
    checked,
    checked_value,
    shown,
)
from hourglass_w2v2.fileio import atomic_write_text, parse_yaml

#: the waveform rate (Hz) every model's feature extractor is built for; audio is resampled to it
SAMPLE_RATE = 16000

ConvLayerSpec = list[tuple[int, int, int]]

#: the wav2vec 2.0 Base/Large extractor: receptive field 400 samples, stride 320 (20 ms at 16 kHz)
W2V2_CONV_LAYERS: ConvLayerSpec = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def _eval_node(node: ast.AST) -> Any:
    """Evaluate a list/tuple/int expression with ``+`` and ``*`` (fairseq's layer-spec strings)."""
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _eval_node(node.left), _eval_node(node.right)
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise ValueError(f"unsupported expression in layer spec: {ast.dump(node)}")


def parse_spec_string(text: str) -> Any:
    """Parse a fairseq/NVIDIA spec string such as ``"[(512,10,5)] + [(512,3,2)] * 4"`` or
    ``"[2, (8, 4), 2]"`` without ``eval``: only list/tuple/number literals, ``+`` and ``*``."""
    return _eval_node(ast.parse(text.strip(), mode="eval"))


def parse_conv_layers(spec: Any) -> ConvLayerSpec:
    """Normalise an extractor layer spec (string or sequences) to ``[(dim, kernel, stride)]``."""
    if isinstance(spec, str):
        spec = parse_spec_string(spec)
    layers = []
    for item in spec:
        if len(item) != 3 or not all(isinstance(v, int) and v > 0 for v in item):
            raise ValueError(
                f"extractor_conv_layers: expected (dim, kernel, stride) ints, got {item!r}"
            )
        layers.append((int(item[0]), int(item[1]), int(item[2])))
    if not layers:
        raise ValueError("extractor_conv_layers: empty")
    return layers


def parse_hourglass(spec: Any) -> tuple | None:
    """Normalise an hourglass spec to nested tuples ``(n_pre, (inner, factor), n_post)``.

    ``inner`` is a layer count or another spec, so ``[2, ([1, (4, 2), 1], 2), 2]`` nests two
    levels. YAML turns tuples into lists; both are accepted, as is NVIDIA's string form
    ``"[2, (8, 4), 2]"``. ``None`` or an empty list means a vanilla encoder.
    """
    if spec is None or (isinstance(spec, (list, tuple)) and len(spec) == 0):
        return None
    if isinstance(spec, str):
        spec = parse_spec_string(spec)
    if not (isinstance(spec, (list, tuple)) and len(spec) == 3):
        raise ValueError(f"hourglass: expected [n_pre, (inner, factor), n_post], got {spec!r}")
    n_pre, middle, n_post = spec
    if not (isinstance(middle, (list, tuple)) and len(middle) == 2):
        raise ValueError(f"hourglass: middle must be (inner, factor), got {middle!r}")
    inner, factor = middle
    inner = int(inner) if isinstance(inner, int) else parse_hourglass(inner)
    if not (isinstance(n_pre, int) and isinstance(n_post, int) and isinstance(factor, int)):
        raise ValueError(f"hourglass: layer counts and factor must be ints, got {spec!r}")
    if n_pre < 0 or n_post < 0 or factor < 1 or inner is None:
        raise ValueError(f"hourglass: negative count, factor < 1 or empty inner in {spec!r}")
    return (n_pre, (inner, factor), n_post)


def hourglass_num_layers(spec: tuple | None) -> int | None:
    """Total number of transformer layers an hourglass spec describes (None for vanilla)."""
    if spec is None:
        return None
    n_pre, (inner, _), n_post = spec
    return n_pre + n_post + (inner if isinstance(inner, int) else hourglass_num_layers(inner))


def _to_plain(value: Any) -> Any:
    """Tuples to lists, recursively, so the dict is YAML/JSON friendly."""
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


@dataclass
class ModelConfig:
    """Everything that defines a wav2vec 2.0 / hourglass model; see the presets for values."""

    # feature extractor
    extractor_conv_layers: ConvLayerSpec = field(default_factory=lambda: list(W2V2_CONV_LAYERS))
    # "group_norm": GroupNorm on the first layer only (masked); "layer_norm": on every layer
    extractor_mode: str = checked("group_norm", choices=("group_norm", "layer_norm"))
    extractor_conv_bias: bool = False
    feature_grad_mult: float = checked(0.1, ge=0)  # scales the extractor's gradient (0 freezes it)
    # recompute the norms, GELUs and first conv in backward; keep the other convs' outputs
    checkpoint_extractor: bool = False
    # transformer encoder
    encoder_embed_dim: int = checked(768, ge=1)
    encoder_layers: int = checked(12, ge=1)
    encoder_ffn_embed_dim: int = checked(3072, ge=1)
    encoder_attention_heads: int = checked(12, ge=1)
    layer_norm_first: bool = False  # False: post-LN (Base), True: pre-LN (Large)
    conv_pos: int = checked(128, ge=1)  # kernel of the convolutional relative position embedding
    conv_pos_groups: int = checked(16, ge=1)
    checkpoint_layers: bool = False  # recompute each transformer layer in backward
    # hourglass: None (vanilla) or [n_pre, [inner, factor], n_post], inner an int or a spec
    hourglass: Any = None
    # "avg" is NVIDIA's "naive" mean pooling
    shorten: str = checked("avg", choices=("avg", "linear"))
    upsample: str = checked("repeat", choices=("repeat", "linear"))
    # True: shorten padding frames as they are and average over all k frames, as NVIDIA's code
    shorten_pools_padding: bool = False
    # regularisation
    dropout: float = checked(0.1, ge=0, lt=1)
    attention_dropout: float = checked(0.1, ge=0, lt=1)
    activation_dropout: float = checked(0.0, ge=0, lt=1)
    dropout_input: float = checked(0.1, ge=0, lt=1)  # after the feature projection
    dropout_features: float = checked(0.1, ge=0, lt=1)  # on the quantizer's input
    layerdrop: float = checked(0.05, ge=0, lt=1)
    final_dropout: float = checked(0.0, ge=0, lt=1)  # before the CTC head
    # masking (pretraining values; fine-tuning overrides them)
    mask_prob: float = checked(0.65, ge=0, le=1)
    mask_length: int = checked(10, ge=1)
    min_masks: int = checked(2, ge=0)
    # the same number of masked frames (and channels) in every row, cut to the row with the
    # fewest, as fairseq's default; pretraining needs it (masked frames reshape to (B, M, C))
    require_same_masks: bool = True
    # share of each row's masked frames unmasked again (fairseq's)
    mask_dropout: float = checked(0.0, ge=0, lt=1)
    mask_channel_prob: float = checked(0.0, ge=0, le=1)
    mask_channel_length: int = checked(10, ge=1)
    # quantizer and contrastive head
    final_dim: int = checked(256, ge=1)
    latent_vars: int = checked(320, ge=1)  # entries per codebook group
    latent_groups: int = checked(2, ge=1)
    latent_dim: int = checked(0, ge=0)  # codebook vector size over all groups; 0 means final_dim
    # Gumbel temperature: start, end, decay per update (decay <= 1)
    latent_temp: tuple[float, float, float] = checked((2.0, 0.5, 0.999995), gt=0)
    # "uniform": U[0, 1) as fairseq and HF (entries share a large mean: cosine ~0.75 between any
    # two, so targets start nearly identical and short runs sit at chance for hundreds of
    # updates); "centered": U[-0.5, 0.5), the same spread without the shared mean
    codebook_init: str = checked("uniform", choices=("uniform", "centered"))
    num_negatives: int = checked(100, ge=1)
    logit_temp: float = checked(0.1, gt=0)
    diversity_weight: float = checked(0.1, ge=0)
    feature_penalty_weight: float = checked(10.0, ge=0)

    def __post_init__(self) -> None:
        self.extractor_conv_layers = parse_conv_layers(self.extractor_conv_layers)
        self.hourglass = parse_hourglass(self.hourglass)
        check_fields(self)  # types, ranges and choices; a ConfigError names the key
        _check_temp_decay(self.latent_temp, "latent_temp")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError(
                f"encoder_embed_dim {self.encoder_embed_dim} not divisible by "
                f"encoder_attention_heads {self.encoder_attention_heads}"
            )
        if self.encoder_embed_dim % self.conv_pos_groups:
            raise ValueError("encoder_embed_dim must be divisible by conv_pos_groups")
        if self.quantizer_dim % self.latent_groups:
            raise ValueError("latent_dim (or final_dim) must be divisible by latent_groups")
        total = hourglass_num_layers(self.hourglass)
        if total is not None and total != self.encoder_layers:
            raise ValueError(
                f"hourglass {self.hourglass} has {total} layers "
                f"but encoder_layers={self.encoder_layers}"
            )

    @property
    def quantizer_dim(self) -> int:
        """Size of a quantized vector (all groups concatenated), fairseq's ``vq_dim``."""
        return self.latent_dim if self.latent_dim > 0 else self.final_dim

    @property
    def extractor_dim(self) -> int:
        """Channels of the last extractor conv layer."""
        return self.extractor_conv_layers[-1][0]

    # ---------------------------------------------------------------- io
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, numbers, strings), the form stored in checkpoints and YAML."""
        return {f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict; an unknown key raises ValueError naming it (typos must not pass)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ModelConfig key(s): {', '.join(unknown)}")
        return cls(**d)

    def to_yaml(self, path: str | Path) -> None:
        """Write the config as YAML."""
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        """Read a config written by :meth:`to_yaml` (or by hand)."""
        data = parse_yaml(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of ModelConfig keys")
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with some fields changed (validated like :meth:`from_dict`)."""
        return ModelConfig.from_dict({**self.to_dict(), **overrides})

    @classmethod
    def check_section(cls, section: dict[str, Any], name: str = "model") -> None:
        """Check an experiment config's model section (a ``preset`` name and ModelConfig keys)
        key by key, naming ``name.key`` when one is unknown or its value bad; the checks across
        keys (heads dividing the width, ...) come when the model config is built."""
        for key, value in section.items():
            if key == "preset":
                check_bounds(value, Bounds(choices=tuple(PRESETS)), f"{name}.preset")
            elif key == "extractor_conv_layers":
                parse_conv_layers(value)
            elif key == "hourglass":
                parse_hourglass(value)
            elif key in _FIELD_NAMES:
                value = checked_value(cls, key, value, f"{name}.{key}")
                if key == "latent_temp":
                    _check_temp_decay(value, f"{name}.{key}")
            else:
                known = ", ".join(["preset", *_FIELD_NAMES])
                raise ValueError(f"unknown config key '{name}.{key}' (known: {known})")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset (see :data:`PRESETS`), optionally with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})


_FIELD_NAMES = [f.name for f in dataclasses.fields(ModelConfig)]


def _check_temp_decay(latent_temp: tuple[float, float, float], key: str) -> None:
    """The Gumbel temperature's decay per update (its third value) may not grow it."""
    if not latent_temp[2] <= 1:
        raise ConfigError(f"{key}[2]", f"= {shown(latent_temp[2])} is out of range: must be <= 1")


_TINY = dict(
    extractor_conv_layers=[(64, 10, 5)] + [(64, 3, 2)] * 4 + [(64, 2, 2)] * 2,
    encoder_embed_dim=256,
    encoder_layers=4,
    encoder_ffn_embed_dim=1024,
    encoder_attention_heads=4,
    final_dim=128,
    latent_vars=64,
    num_negatives=50,
    layerdrop=0.0,
    feature_grad_mult=1.0,
    attention_dropout=0.0,  # lets CPU SDPA use its fused kernel: ~10% of a tiny step
)
_BASE: dict[str, Any] = {}  # the dataclass defaults are fairseq's wav2vec2_base
_LARGE = dict(
    extractor_mode="layer_norm",
    extractor_conv_bias=True,
    feature_grad_mult=1.0,
    encoder_embed_dim=1024,
    encoder_layers=24,
    encoder_ffn_embed_dim=4096,
    encoder_attention_heads=16,
    layer_norm_first=True,
    final_dim=768,
    latent_temp=(2.0, 0.1, 0.999995),
    dropout=0.0,
    layerdrop=0.0,
)

#: preset name -> overrides of the dataclass defaults
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": _TINY,
    "tiny-hourglass": {**_TINY, "hourglass": [1, [2, 4], 1]},
    "base": _BASE,
    "base-hourglass": {**_BASE, "hourglass": [2, [8, 4], 2]},  # NVIDIA's [2,(8,4),2]
    "large": _LARGE,
    "large-hourglass": {**_LARGE, "hourglass": [4, [16, 4], 4]},
}
