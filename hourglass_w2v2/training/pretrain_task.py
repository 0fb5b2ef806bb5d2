"""Contrastive pretraining as a :class:`~hourglass_w2v2.training.trainer.Task`."""

from __future__ import annotations

from pathlib import Path

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler
from torch import nn

from hourglass_w2v2.data.datasets import (
    PretrainDataset,
    ShardedPretrainDataset,
    ShardStreams,
    cut_set_path,
    filter_durations,
    load_cuts,
    make_eval_sampler,
    make_sampler,
    speed_perturbed,
)
from hourglass_w2v2.data.prepare.shar import shar_shards
from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.training.config import DataConfig, ExperimentConfig
from hourglass_w2v2.training.health import HealthMonitor
from hourglass_w2v2.training.sampling import ShardedBatchSampler
from hourglass_w2v2.training.task import Task

#: PretrainOutput fields logged as metrics (all means over masked frames / the batch)
PRETRAIN_METRICS = (
    "contrastive_loss",
    "diversity_loss",
    "feature_penalty",
    "accuracy",
    "code_perplexity",
    "prob_perplexity",
    "temperature",
    "num_masked",
    "target_similarity",
)


def model_config(cfg: ExperimentConfig) -> ModelConfig:
    """``ModelConfig`` from the experiment's ``model`` section (a preset plus overrides)."""
    section = dict(cfg.model)
    preset = section.pop("preset", None)
    if preset is None:
        return ModelConfig.from_dict(section)
    return ModelConfig.preset(preset, **section)


def data_paths(d: DataConfig, train: bool) -> list[str]:
    """Cut-set paths of the training (or validation) data named by the data section.

    A path that does not exist raises ``FileNotFoundError`` naming the config key and the
    path, and for ``*_parts`` the parts that the manifest dir does hold.
    """
    kind = "train" if train else "valid"
    explicit = d.train_cuts if train else d.valid_cuts
    if explicit:
        for p in explicit:
            if not Path(p).is_file():
                raise FileNotFoundError(f"data.{kind}_cuts: cut set {p} does not exist")
        return list(explicit)
    paths = []
    for part in d.train_parts if train else d.valid_parts:
        path = cut_set_path(d.manifest_dir, d.corpus, part)
        if not path.is_file():
            raise FileNotFoundError(
                f"data.{kind}_parts: part '{part}' has no cut set {path}; {_parts_held(d)}"
            )
        paths.append(str(path))
    return paths


def _parts_held(d: DataConfig) -> str:
    """The parts of ``data.corpus`` in ``data.manifest_dir``, in words, for error messages."""
    prefix = cut_set_path(d.manifest_dir, d.corpus, "").name.removesuffix(".jsonl.gz")
    held = sorted(
        p.name[len(prefix) : -len(".jsonl.gz")]
        for p in Path(d.manifest_dir).glob(f"{prefix}*.jsonl.gz")
    )
    if held:
        return f"the parts there are: {', '.join(held)}"
    return (
        f"{d.manifest_dir} holds no '{d.corpus}' cut sets (check data.manifest_dir and "
        "data.corpus, or run prepare.sh up to stage 3)"
    )


def valid_cuts(d: DataConfig):
    """The validation cuts (the first ``valid_max_cuts`` when set)."""
    cuts = filter_durations(
        load_cuts(data_paths(d, train=False)), d.min_duration, d.max_cut_duration
    )
    return cuts.subset(first=d.valid_max_cuts) if d.valid_max_cuts else cuts


def train_cuts(d: DataConfig):
    """The training cuts, joined by their ``speed_perturb`` copies, then duration-filtered.

    The validation cut sets are looked up too, so that a wrong name fails now, not after
    the first stretch of training.
    """
    data_paths(d, train=False)
    cuts = load_cuts(data_paths(d, train=True))
    if d.speed_perturb:
        cuts = speed_perturbed(cuts, d.speed_perturb)
    return filter_durations(cuts, d.min_duration, d.max_cut_duration)


def sampler_args(cfg: ExperimentConfig) -> dict:
    """:func:`make_sampler`'s keyword arguments from the ``data`` section and the trainer's
    seed (the FLAC and the Shar paths batch alike)."""
    d = cfg.data
    return dict(
        max_duration=d.max_duration,
        shuffle=d.shuffle,
        seed=cfg.trainer.seed,
        num_buckets=d.num_buckets,
        buffer_size=d.buffer_size,
        duration_bins=d.duration_bins,
    )


def dataset_args(cfg: ExperimentConfig) -> dict:
    """:class:`PretrainDataset`'s keyword arguments for training (the FLAC and the Shar paths
    crop alike)."""
    d = cfg.data
    return dict(
        max_sample_size=d.max_sample_size,
        normalize=d.normalize,
        skip_corrupt=d.skip_corrupt,
        seed=cfg.trainer.seed,
        crop_multiple=d.crop_multiple,
    )


def train_sampler(cuts: CutSet, cfg: ExperimentConfig) -> DynamicBucketingSampler:
    """The training sampler of ``cuts`` as the ``data`` section and the trainer's seed say."""
    return make_sampler(cuts, **sampler_args(cfg))


def data_shards(d: DataConfig) -> list[dict[str, str]]:
    """The Shar shards of ``data.shar_dir``; ``FileNotFoundError`` naming the key when the
    folder holds none, or a shard misses its audio."""
    try:
        return shar_shards(d.shar_dir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"data.shar_dir: {e}") from None


def shar_train_data(cfg: ExperimentConfig) -> tuple[ShardedPretrainDataset, ShardedBatchSampler]:
    """Dataset and sampler reading the training cuts from the Shar shards of ``data.shar_dir``.

    One stream per DataLoader worker (``data.num_workers``, at least one) on each rank; the
    shard order is reshuffled every epoch when ``data.shuffle`` is set. Speed perturbation is
    not available here (it would need every shard read once per factor).
    """
    d = cfg.data
    if d.speed_perturb:
        raise ValueError(
            "data.speed_perturb cannot be combined with data.shar_dir; remove one of them"
        )
    data_paths(d, train=False)  # a wrong validation name fails now
    shards = data_shards(d)
    streams = ShardStreams(shards, sampler_args(cfg), d.min_duration, d.max_cut_duration)
    dataset = ShardedPretrainDataset(streams, **dataset_args(cfg))
    sampler = ShardedBatchSampler(streams, max(1, d.num_workers), cfg.trainer.seed, d.shuffle)
    return dataset, sampler


class PretrainTask(Task):
    """wav2vec 2.0 pretraining: loss = contrastive + diversity + feature penalty (model's)."""

    name = "pretrain"

    def __init__(self, cfg: ExperimentConfig) -> None:
        self.cfg = cfg
        self.model_cfg = model_config(cfg)
        self.health = (
            HealthMonitor(
                cfg.health,
                self.model_cfg.num_negatives,
                self.model_cfg.latent_groups,
                self.model_cfg.codebook_init,
            )
            if cfg.health.enabled
            else None
        )

    def build_model(self) -> nn.Module:
        return build_model(self.model_cfg, task="pretrain")

    def train_data(self):
        d = self.cfg.data
        if d.shar_dir is not None:
            return shar_train_data(self.cfg)
        cuts = train_cuts(d)
        return PretrainDataset(**dataset_args(self.cfg)), train_sampler(cuts, self.cfg)

    def set_num_updates(self, model: nn.Module, update: int) -> None:
        model.set_num_updates(update)

    def compute_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        out = model(batch["waveforms"], batch["padding_mask"])
        metrics = {k: getattr(out, k) for k in PRETRAIN_METRICS}
        metrics["sample_size"] = out.sample_size
        return out.loss, metrics

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Pretraining losses and accuracy on the validation cuts (masking as in training)."""
        d = self.cfg.data
        if not data_paths(d, train=False):
            return {}
        cuts = valid_cuts(d)
        dataset = PretrainDataset(d.max_sample_size, d.normalize, d.skip_corrupt, seed=0)
        sampler = make_eval_sampler(cuts, d.valid_max_duration or d.max_duration)
        device = next(model.parameters()).device
        totals: dict[str, float] = {}
        n_total = 0
        # Masks and negatives are random: a fixed seed makes validation comparable over time.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            for cuts_batch in sampler:
                batch = dataset[cuts_batch]
                loss, metrics = self.compute_loss(
                    model, {"waveforms": batch["waveforms"].to(device), "padding_mask": None}
                )
                n = int(metrics.pop("sample_size"))
                metrics["loss"] = loss
                for k, v in metrics.items():
                    totals[k] = totals.get(k, 0.0) + float(v) * n
                n_total += n
        return {k: v / max(n_total, 1) for k, v in totals.items()} if n_total else {}
