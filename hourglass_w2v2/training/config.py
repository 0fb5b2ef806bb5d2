"""The experiment config: one YAML file, sections as dataclasses, ``key=value`` overrides.

An experiment config has the sections ``model`` (a preset name plus ``ModelConfig`` overrides),
``data``, ``optim``, ``schedule``, ``trainer``, ``health`` and, for fine-tuning, ``ctc``. Unknown
keys are errors that name the key, so a typo in a config or on the command line never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``5e-4`` (no dot) as a string; every config writes lrs that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    """``yaml.safe_load`` that also reads ``1e-4`` as a float."""
    return yaml.load(text, Loader=_Loader)


@dataclass
class DataConfig:
    """Where the cuts are and how they are batched."""

    manifest_dir: str = "data/manifests"
    corpus: str = "synth"
    train_parts: list[str] = field(default_factory=lambda: ["pretrain"])
    valid_parts: list[str] = field(default_factory=lambda: ["dev-clean"])
    train_cuts: list[str] | None = None  # explicit cut-set paths; override train_parts
    valid_cuts: list[str] | None = None
    max_duration: float = 20.0  # seconds of audio per micro-batch (per GPU)
    valid_max_duration: float | None = None  # defaults to max_duration
    valid_max_cuts: int | None = None  # validate on the first N cuts only (cheap CPU runs)
    num_buckets: int = 10
    # bucket boundaries in seconds (num_buckets - 1 values); None estimates them from the first
    # 10k cuts at start-up (lhotse's estimate_duration_buckets), which is slow on huge sets
    duration_bins: list[float] | None = None
    buffer_size: int = 20000
    shuffle: bool = True
    num_workers: int = 1
    normalize: bool = False  # zero-mean unit-variance waveform per utterance
    max_sample_size: int = 250_000  # pretraining crop limit, in samples
    min_duration: float = 0.0  # cuts shorter than this are dropped (seconds)
    max_cut_duration: float | None = None  # cuts longer than this are dropped (seconds)
    skip_corrupt: bool = False  # corrupt audio: skip and count instead of failing
    # training cuts are joined by copies played at these speeds (lhotse's perturb_speed, as
    # icefall's speed perturbation: pitch and tempo change together), e.g. [0.9, 1.1]
    speed_perturb: list[float] | None = None


@dataclass
class OptimConfig:
    """Adam(W) and gradient handling."""

    optimizer: str = "adam"  # adam | adamw (decoupled weight decay)
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    clip_grad_norm: float = 25.0  # 0 disables clipping (the norm is still logged)
    layer_lr_decay: float = 1.0  # < 1: lr x decay^(depth below the head), see param_groups


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``polynomial`` (warmup + decay) or ``tri_stage``."""

    name: str = "polynomial"
    warmup_updates: int = 32000
    end_lr: float = 0.0  # polynomial: lr reached at trainer.max_updates
    power: float = 1.0  # polynomial: 1 = linear decay
    phase_ratio: tuple[float, float, float] = (0.1, 0.4, 0.5)  # tri_stage warmup/hold/decay
    init_lr_scale: float = 0.01  # tri_stage
    final_lr_scale: float = 0.05  # tri_stage


@dataclass
class TrainerConfig:
    """The loop: length, batch size, precision, logging, checkpoints, faults."""

    max_updates: int = 400_000
    max_epochs: int = 10_000
    global_batch_duration: float | None = None  # seconds of audio per update, all GPUs together
    accum_grad: int = 1  # used only when global_batch_duration is not set
    precision: str = "fp32"  # fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 42
    log_interval: int = 50
    valid_interval: int = 0  # 0: validate only at the end
    save_interval: int = 1000
    keep_last: int = 3
    keep_every: int = 0  # milestones: also keep every checkpoint whose update is a multiple
    max_consecutive_nonfinite: int = 10
    compile: bool = False
    activation_checkpointing: bool = False
    find_unused_parameters: bool = False
    progress: bool = True  # tqdm bar on rank 0


@dataclass
class HealthConfig:
    """Thresholds of the pretraining health monitor (see ``training/health.py``)."""

    enabled: bool = True
    stop_on_failure: bool = False
    warmup_updates: int = 100  # no verdicts before this many updates
    window: int = 50  # updates averaged for each verdict
    collapse_perplexity: float = 2.0  # code perplexity per group below this = collapse
    degenerate_accuracy: float = 0.99
    degenerate_loss: float = 0.05
    stall_tolerance: float = 0.05  # |contrastive loss - log(K+1)| / log(K+1)
    stall_updates: int = 2000  # stuck this long after warmup -> stall
    grad_norm_factor: float = 20.0  # grad norm beyond factor x running median
    dead_feature_penalty: float = 1e-8  # extractor output mean square below this = dead
    report_every: int = 500  # a lasting failure is logged again after this many updates


@dataclass
class CtcConfig:
    """Fine-tuning specifics."""

    lang_dir: str = "data/lang_char"
    freeze_encoder_updates: int = 0
    freeze_feature_extractor: bool = True
    init: str | None = None  # pretraining ckpt, or fairseq/HF/torchaudio checkpoint to import
    init_from_scratch: bool = False
    reset_top_layers: int = 0  # re-initialise the last N pretrained encoder layers
    average_last: int = 0  # --avg N: average the last N checkpoints into averaged.pt
    only_blank_threshold: float = 0.99  # blank share above this = "only blanks"
    best_metric: str = "wer"  # wer | cer | ctc_loss: what best.pt minimises on validation


@dataclass
class ExperimentConfig:
    """A whole experiment: everything ``config.yaml`` in an experiment dir holds."""

    task: str = "pretrain"
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny-hourglass"})
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    ctc: CtcConfig = field(default_factory=CtcConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """Build from a nested dict; unknown keys raise ``ValueError`` naming the dotted key."""
        return _from_dict(cls, d, prefix="")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), safe for YAML and ``torch.save``."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path) -> None:
        """Write the resolved config."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _from_dict(cls: type, d: dict[str, Any], prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in d.items():
        if key not in fields:
            raise ValueError(
                f"unknown config key '{prefix}{key}' (known: {', '.join(sorted(fields))})"
            )
        default = fields[key].default_factory() if callable(fields[key].default_factory) else None
        if dataclasses.is_dataclass(default):
            kwargs[key] = _from_dict(type(default), value or {}, prefix=f"{prefix}{key}.")
        elif isinstance(fields[key].default, tuple) and isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a nested config dict.

    The key must exist in :class:`ExperimentConfig` (checked when the dict is turned into one),
    except under ``model``, whose keys are checked by ``ModelConfig``.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r}: '{p}' is not a section")
        node[parts[-1]] = parse_yaml(raw)
    return d


def load_config(path: str | Path | None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a YAML experiment config, apply overrides, validate every key."""
    d = _read_config(Path(path)) if path is not None else {}
    return ExperimentConfig.from_dict(apply_overrides(d, list(overrides)))


def _read_config(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a dict; ``base: other.yaml`` (relative to the file) is read first and
    this file's sections are merged over it key by key, so a variant states only what differs."""
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    if path.resolve() in seen:
        raise ValueError(f"config {path}: 'base' chain loops back to itself")
    d = parse_yaml(path.read_text()) or {}
    base = d.pop("base", None)
    if base is None:
        return d
    merged = _read_config(path.parent / base, seen + (path.resolve(),))
    for section, value in d.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
        else:
            merged[section] = value
    return merged
