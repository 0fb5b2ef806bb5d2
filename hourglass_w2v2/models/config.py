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


#: keys holding a probability: True where 1 itself is allowed ([0, 1]), else [0, 1)
_PROBABILITIES = {
    "dropout": False,
    "attention_dropout": False,
    "activation_dropout": False,
    "dropout_input": False,
    "dropout_features": False,
    "layerdrop": False,
    "final_dropout": False,
    "mask_dropout": False,
    "mask_prob": True,
    "mask_channel_prob": True,
}
#: integer keys and their smallest value
_INT_MINIMUMS = {
    "encoder_embed_dim": 1,
    "encoder_layers": 1,
    "encoder_ffn_embed_dim": 1,
    "encoder_attention_heads": 1,
    "conv_pos": 1,
    "conv_pos_groups": 1,
    "mask_length": 1,
    "min_masks": 0,
    "mask_channel_length": 1,
    "final_dim": 1,
    "latent_vars": 1,
    "latent_groups": 1,
    "latent_dim": 0,
    "num_negatives": 1,
}
#: number keys that may not be negative
_NON_NEGATIVE = ("feature_grad_mult", "diversity_weight", "feature_penalty_weight")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)  # a bool is an int to Python, not to a config


@dataclass
class ModelConfig:
    """Everything that defines a wav2vec 2.0 / hourglass model; see the presets for values."""

    # feature extractor
    extractor_conv_layers: ConvLayerSpec = field(default_factory=lambda: list(W2V2_CONV_LAYERS))
    extractor_mode: str = "group_norm"  # "group_norm" (first layer only, masked) | "layer_norm"
    extractor_conv_bias: bool = False
    feature_grad_mult: float = 0.1  # scales the extractor's gradient (0 freezes it)
    # recompute the norms, GELUs and first conv in backward; keep the other convs' outputs
    checkpoint_extractor: bool = False
    # transformer encoder
    encoder_embed_dim: int = 768
    encoder_layers: int = 12
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = False  # False: post-LN (Base), True: pre-LN (Large)
    conv_pos: int = 128  # kernel of the convolutional relative position embedding
    conv_pos_groups: int = 16
    checkpoint_layers: bool = False  # recompute each transformer layer in backward
    # hourglass: None (vanilla) or [n_pre, [inner, factor], n_post], inner an int or a spec
    hourglass: Any = None
    shorten: str = "avg"  # "avg" (NVIDIA's "naive" mean pooling) | "linear"
    upsample: str = "repeat"  # "repeat" | "linear"
    # True: shorten padding frames as they are and average over all k frames, as NVIDIA's code
    shorten_pools_padding: bool = False
    # regularisation
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    dropout_input: float = 0.1  # after the feature projection
    dropout_features: float = 0.1  # on the quantizer's input
    layerdrop: float = 0.05
    final_dropout: float = 0.0  # before the CTC head
    # masking (pretraining values; fine-tuning overrides them)
    mask_prob: float = 0.65
    mask_length: int = 10
    min_masks: int = 2
    # the same number of masked frames (and channels) in every row, cut to the row with the
    # fewest, as fairseq's default; pretraining needs it (masked frames reshape to (B, M, C))
    require_same_masks: bool = True
    mask_dropout: float = 0.0  # share of each row's masked frames unmasked again (fairseq's)
    mask_channel_prob: float = 0.0
    mask_channel_length: int = 10
    # quantizer and contrastive head
    final_dim: int = 256
    latent_vars: int = 320  # entries per codebook group
    latent_groups: int = 2
    latent_dim: int = 0  # codebook vector size over all groups; 0 means final_dim
    latent_temp: tuple[float, float, float] = (2.0, 0.5, 0.999995)  # start, end, decay/update
    # "uniform": U[0, 1) as fairseq and HF (entries share a large mean: cosine ~0.75 between any
    # two, so targets start nearly identical and short runs sit at chance for hundreds of
    # updates); "centered": U[-0.5, 0.5), the same spread without the shared mean
    codebook_init: str = "uniform"
    num_negatives: int = 100
    logit_temp: float = 0.1
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0

    def __post_init__(self) -> None:
        self.extractor_conv_layers = parse_conv_layers(self.extractor_conv_layers)
        self.hourglass = parse_hourglass(self.hourglass)
        self.latent_temp = tuple(float(t) for t in self.latent_temp)
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise ValueError(
                f"extractor_mode must be group_norm|layer_norm, got {self.extractor_mode!r}"
            )
        if self.shorten not in ("avg", "linear"):
            raise ValueError(f"shorten must be avg|linear, got {self.shorten!r}")
        if self.codebook_init not in ("uniform", "centered"):
            raise ValueError(f"codebook_init must be uniform|centered, got {self.codebook_init!r}")
        if self.upsample not in ("repeat", "linear"):
            raise ValueError(f"upsample must be repeat|linear, got {self.upsample!r}")
        self._check_ranges()
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

    def _check_ranges(self) -> None:
        """Raise ``ValueError`` naming the first key whose value is out of its range."""
        for key, one_allowed in _PROBABILITIES.items():
            value = getattr(self, key)
            if _is_bool(value) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, got {value!r}")
            if not (0.0 <= value <= 1.0 if one_allowed else 0.0 <= value < 1.0):
                bounds = "[0, 1]" if one_allowed else "[0, 1)"
                raise ValueError(f"{key} must be in {bounds}, got {value}")
        for key, low in _INT_MINIMUMS.items():
            value = getattr(self, key)
            if _is_bool(value) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an int >= {low}, got {value!r}")
        for key in _NON_NEGATIVE:
            value = getattr(self, key)
            # "not >= 0", so that NaN fails too
            if _is_bool(value) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{key} must be a number >= 0, got {value!r}")
        if _is_bool(self.logit_temp) or not isinstance(self.logit_temp, (int, float)):
            raise ValueError(f"logit_temp must be a number > 0, got {self.logit_temp!r}")
        if not self.logit_temp > 0:
            raise ValueError(f"logit_temp must be > 0, got {self.logit_temp}")
        if len(self.latent_temp) != 3:
            raise ValueError(f"latent_temp must be (start, end, decay), got {self.latent_temp}")
        start, end, decay = self.latent_temp
        if not (start > 0 and end > 0 and 0 < decay <= 1):
            raise ValueError(
                f"latent_temp must be (start > 0, end > 0, decay in (0, 1]), got {self.latent_temp}"
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
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset (see :data:`PRESETS`), optionally with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})


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
