"""The experiment config: one YAML file, sections as dataclasses, ``key=value`` overrides.

An experiment config has the sections ``model`` (a preset name plus ``ModelConfig`` overrides),
``data``, ``optim``, ``schedule``, ``trainer``, ``health`` and, for fine-tuning, ``ctc``. Unknown
keys are errors that name the key, so a typo in a config or on the command line never silently
falls back to a default. Every value is checked against its field's type annotation and, where
the field is declared with :func:`checked`, its allowed range, when the config is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hourglass_w2v2.config_fields import ConfigError, checked, checked_value
from hourglass_w2v2.fileio import atomic_write_text, parse_yaml
from hourglass_w2v2.models.config import ModelConfig


@dataclass
class DataConfig:
    """Where the cuts are and how they are batched."""

    manifest_dir: str = "data/manifests"
    corpus: str = "synth"
    train_parts: list[str] = field(default_factory=lambda: ["pretrain"])
    valid_parts: list[str] = field(default_factory=lambda: ["dev-clean"])
    train_cuts: list[str] | None = None  # explicit cut-set paths; override train_parts
    valid_cuts: list[str] | None = None
    # pretraining: read the training cuts from this Lhotse Shar folder (prepare.sh stage 7)
    # instead of train_parts/train_cuts; each rank and DataLoader worker reads its own shards
    shar_dir: str | None = None
    max_duration: float = checked(20.0, gt=0)  # seconds of audio per micro-batch (per GPU)
    valid_max_duration: float | None = checked(None, gt=0)  # defaults to max_duration
    valid_max_cuts: int | None = checked(None, ge=1)  # validate on the first N cuts only
    num_buckets: int = checked(10, ge=1)
    # bucket boundaries in seconds (num_buckets - 1 values); None estimates them from the first
    # 10k cuts at start-up (lhotse's estimate_duration_buckets), which is slow on huge sets
    duration_bins: list[float] | None = checked(None, gt=0)
    buffer_size: int = checked(20000, ge=1)
    shuffle: bool = True
    num_workers: int = checked(1, ge=0)
    normalize: bool = False  # zero-mean unit-variance waveform per utterance
    max_sample_size: int = checked(250_000, ge=1)  # pretraining crop limit, in samples
    # pretraining crops are rounded down to a multiple of this many samples (0: exact, fairseq's
    # rule): batches then come in few lengths, so CPU kernels built for one shape are reused
    crop_multiple: int = checked(0, ge=0)
    min_duration: float = checked(0.0, ge=0)  # cuts shorter than this are dropped (seconds)
    max_cut_duration: float | None = checked(None, gt=0)  # longer cuts are dropped (seconds)
    skip_corrupt: bool = False  # corrupt audio: skip and count instead of failing
    # training cuts are joined by copies played at these speeds (lhotse's perturb_speed, as
    # icefall's speed perturbation: pitch and tempo change together), e.g. [0.9, 1.1]
    speed_perturb: list[float] | None = checked(None, gt=0)


@dataclass
class OptimConfig:
    """Adam(W) and gradient handling."""

    optimizer: str = "adam"  # adam | adamw (decoupled weight decay)
    lr: float = checked(5e-4, gt=0)
    betas: tuple[float, float] = checked((0.9, 0.98), ge=0, lt=1)
    eps: float = checked(1e-6, gt=0)
    weight_decay: float = checked(0.01, ge=0)
    # which parameters skip weight decay: "none" (fairseq's adam decays all) | "bias_norm"
    # (biases, norm gains, 1-D parameters such as mask_emb), see optim.param_groups
    weight_decay_exempt: str = "bias_norm"
    clip_grad_norm: float = checked(25.0, ge=0)  # 0 disables clipping (the norm is still logged)
    # < 1: lr x decay^(depth below the head), see param_groups
    layer_lr_decay: float = checked(1.0, gt=0, le=1)
    # CPU: torch's fused Adam(W) kernel instead of its per-parameter loop (CUDA is always fused)
    fused_cpu: bool = False


@dataclass
class ScheduleConfig:
    """Learning-rate schedule: ``polynomial`` (warmup + decay) or ``tri_stage``."""

    name: str = "polynomial"
    warmup_updates: int = checked(32000, ge=0)
    end_lr: float = checked(0.0, ge=0)  # polynomial: lr reached at trainer.max_updates
    power: float = checked(1.0, gt=0)  # polynomial: 1 = linear decay
    # tri_stage warmup/hold/decay shares of trainer.max_updates
    phase_ratio: tuple[float, float, float] = checked((0.1, 0.4, 0.5), ge=0, le=1)
    init_lr_scale: float = checked(0.01, ge=0)  # tri_stage
    final_lr_scale: float = checked(0.05, ge=0)  # tri_stage


@dataclass
class TrainerConfig:
    """The loop: length, batch size, precision, logging, checkpoints, faults."""

    max_updates: int = checked(400_000, ge=1)
    max_epochs: int = checked(10_000, ge=1)
    # seconds of audio per update, all GPUs together
    global_batch_duration: float | None = checked(None, gt=0)
    accum_grad: int = checked(1, ge=1)  # used only when global_batch_duration is not set
    precision: str = checked("fp32", choices=("fp32", "bf16", "fp16"))
    device: str = "auto"  # auto | cpu | cuda
    seed: int = checked(42, ge=0)
    log_interval: int = checked(50, ge=1)
    valid_interval: int = checked(0, ge=0)  # 0: validate only at the end
    save_interval: int = checked(1000, ge=1)
    keep_last: int = checked(3, ge=0)  # 0 keeps every checkpoint
    # milestones: also keep every checkpoint whose update is a multiple
    keep_every: int = checked(0, ge=0)
    max_consecutive_nonfinite: int = checked(10, ge=1)
    compile: bool = False
    activation_checkpointing: bool = False
    # CPU: the extractor's strided convs get their input gradient by phases (faster, same sums)
    polyphase_conv_backward: bool = False
    # CPU: glibc keeps the buffers an update frees for the next (no page faults; same values)
    reuse_freed_memory: bool = False
    # CPU: Linear layers on oneDNN's fp32 GEMM (faster than MKL's on AMD CPUs; same arithmetic),
    # where oneDNN computes in fp32 (not on CPUs with AMX), see training/onednn.py
    onednn_linear: bool = False
    find_unused_parameters: bool = False
    progress: bool = True  # tqdm bar on rank 0


@dataclass
class HealthConfig:
    """Thresholds of the pretraining health monitor (see ``training/health.py``)."""

    enabled: bool = True
    stop_on_failure: bool = False
    warmup_updates: int = checked(100, ge=0)  # no verdicts before this many updates
    window: int = checked(50, ge=1)  # updates averaged for each verdict
    # code perplexity per group below this = collapse
    collapse_perplexity: float = checked(2.0, ge=0)
    degenerate_accuracy: float = checked(0.99, ge=0, le=1)
    degenerate_loss: float = checked(0.05, ge=0)
    stall_tolerance: float = checked(0.05, ge=0)  # |contrastive loss - log(K+1)| / log(K+1)
    stall_updates: int = checked(2000, ge=1)  # stuck this long after warmup -> stall
    grad_norm_factor: float = checked(20.0, gt=0)  # grad norm beyond factor x running median
    # extractor output mean square below this = dead
    dead_feature_penalty: float = checked(1e-8, ge=0)
    # a lasting failure is logged again after this many updates
    report_every: int = checked(500, ge=1)


@dataclass
class CtcConfig:
    """Fine-tuning specifics."""

    lang_dir: str = "data/lang_char"
    freeze_encoder_updates: int = checked(0, ge=0)
    freeze_feature_extractor: bool = True
    init: str | None = None  # pretraining ckpt, or fairseq/HF/torchaudio checkpoint to import
    init_from_scratch: bool = False
    # re-initialise the last N pretrained encoder layers
    reset_top_layers: int = checked(0, ge=0)
    # --avg N: average the last N checkpoints into averaged.pt
    average_last: int = checked(0, ge=0)
    # blank share above this = "only blanks"
    only_blank_threshold: float = checked(0.99, ge=0, le=1)
    # what best.pt minimises on validation
    best_metric: str = checked("wer", choices=("wer", "cer", "ctc_loss"))


@dataclass
class ExperimentConfig:
    """A whole experiment: everything ``config.yaml`` in an experiment dir holds."""

    task: str = checked("pretrain", choices=("pretrain", "ctc"))
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
        cfg = _from_dict(cls, d, prefix="")
        ModelConfig.check_section(cfg.model)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), safe for YAML and ``torch.save``."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path) -> None:
        """Write the resolved config (atomically: a reader never sees half of it)."""
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


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
            continue
        kwargs[key] = checked_value(cls, key, value, prefix + key)
    return cls(**kwargs)


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a nested config dict.

    The key must exist in :class:`ExperimentConfig`, or under ``model`` in ``ModelConfig``
    (checked when the dict is turned into one).
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
    """Read a YAML experiment config, apply overrides, validate every key and value.

    A bad value raises :class:`ConfigError` saying where it came from: the command-line
    override that set it, or the config file.
    """
    d = _read_config(Path(path)) if path is not None else {}
    try:
        return ExperimentConfig.from_dict(apply_overrides(d, list(overrides)))
    except ConfigError as e:
        top = e.key.split("[")[0]
        given = [o for o in overrides if o.split("=", 1)[0].strip() == top]
        where = f"command-line override {given[-1]}" if given else f"in {path}"
        raise e.at(where) from None


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


#: What a run may change when it resumes from its own checkpoint: how it is carried out,
#: watched, validated and kept, not what its updates compute. A ``section.key`` entry names one
#: key, a bare ``section`` all of its keys. ``trainer.max_updates`` re-plans the lr schedule from
#: the update reached (the trainer does that).
RESUME_MAY_CHANGE = frozenset(
    {
        "trainer.max_updates",
        "trainer.max_epochs",
        "trainer.device",
        "trainer.log_interval",
        "trainer.valid_interval",
        "trainer.save_interval",
        "trainer.keep_last",
        "trainer.keep_every",
        "trainer.max_consecutive_nonfinite",
        "trainer.compile",
        "trainer.activation_checkpointing",
        "trainer.polyphase_conv_backward",
        "trainer.reuse_freed_memory",
        "trainer.onednn_linear",
        "trainer.find_unused_parameters",
        "trainer.progress",
        "data.num_workers",
        "data.valid_parts",
        "data.valid_cuts",
        "data.valid_max_duration",
        "data.valid_max_cuts",
        "data.skip_corrupt",
        "health",
        "ctc.average_last",
        "ctc.only_blank_threshold",
        "ctc.best_metric",
    }
)


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every key set in both resolved configs with
    different values (tuples compare as lists). A key only one side has, one that a newer or
    older version of the code added or removed, is not a change."""
    changes = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a.keys() & b.keys():
                walk(a[key], b[key], f"{prefix}{key}.")
        elif _plain(a) != _plain(b):
            changes.append((prefix.rstrip("."), a, b))

    walk(old, new, "")
    return sorted(changes, key=lambda change: change[0])


def may_change_on_resume(key: str) -> bool:
    """Whether a resumed run may change ``key`` (see :data:`RESUME_MAY_CHANGE`)."""
    return key in RESUME_MAY_CHANGE or key.split(".", 1)[0] in RESUME_MAY_CHANGE
