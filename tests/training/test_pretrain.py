"""A few pretraining updates of ``tiny``: losses, metrics, tensorboard, checkpoints, faults."""

from __future__ import annotations

import json
import math
import shutil
import signal
import time

import pytest
import torch
import yaml

from hourglass_w2v2.bin import pretrain
from hourglass_w2v2.checkpoint import CHECKPOINT_KEYS, load_checkpoint
from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.trainer import NonFiniteError, Trainer

TB_TAGS = {
    "train/loss",
    "train/contrastive_loss",
    "train/diversity_loss",
    "train/feature_penalty",
    "train/accuracy",
    "train/code_perplexity",
    "train/prob_perplexity",
    "train/temperature",
    "train/lr",
    "train/grad_norm",
    "train/audio_seconds_per_second",
    "train/peak_memory_gb",
    "train/nonfinite_skipped",
    "train/target_similarity",
}


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory, helpers):
    """6 updates of tiny, checkpoints at 3 and 6, validation at the end."""
    exp = tmp_path_factory.mktemp("exp") / "pretrain"
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus))
    last = Trainer(cfg, PretrainTask(cfg), exp).fit()
    return cfg, exp, last


def test_losses_and_metrics(run, helpers):
    cfg, exp, last = run
    m = helpers.read_metrics(exp)
    assert sorted(m) == [1, 2, 3, 4, 5, 6]
    losses = [m[u]["loss"] for u in sorted(m)]
    assert max(losses[-2:]) < 0.6 * losses[0]  # the feature penalty and diversity fall fast
    assert all(m[u]["code_perplexity"] > 1.0 for u in m)
    assert all(0.0 <= m[u]["accuracy"] <= 1.0 for u in m)
    assert all(m[u]["nonfinite_skipped"] == 0 == m[u]["corrupt_cuts_skipped"] for u in m)
    # lr follows warmup (2 updates) then linear decay to 0 at update 6
    assert [round(m[u]["lr"] / cfg.optim.lr, 4) for u in sorted(m)] == [
        0.5,
        1.0,
        1.0,
        0.75,
        0.5,
        0.25,
    ]


def test_checkpoints_have_every_key(run, helpers):
    cfg, exp, _ = run
    names = sorted(p.name for p in (exp / "checkpoints").iterdir())
    assert names == ["ckpt-3.pt", "ckpt-6.pt"]
    ckpt = load_checkpoint(exp / "checkpoints" / "ckpt-6.pt")
    assert set(ckpt) == set(CHECKPOINT_KEYS)
    assert ckpt["task"] == "pretrain" and ckpt["update"] == 6 and ckpt["vocab_size"] is None
    assert ckpt["config"] == {**cfg.to_dict(), "model": ckpt["model_config"]}
    assert (
        ckpt["model_config"]
        == ModelConfig.preset(
            "tiny", **{k: v for k, v in cfg.model.items() if k != "preset"}
        ).to_dict()
    )
    assert ckpt["sampler"]["num_shards"] == 1 and len(ckpt["rng"]) == 1
    model = build_model(ModelConfig.from_dict(ckpt["model_config"]), task="pretrain")
    model.load_state_dict(ckpt["model"])  # strict
    assert ckpt["metrics"]["last"]["loss"] == helpers.read_metrics(exp)[6]["loss"]


def test_experiment_dir(run):
    cfg, exp, _ = run
    resolved = ExperimentConfig.from_dict(yaml.safe_load((exp / "config.yaml").read_text()))
    assert resolved.to_dict() == {**cfg.to_dict(), "model": resolved.model}
    assert ModelConfig.from_dict(resolved.model).num_negatives == 10  # every field, no preset
    info = json.loads((exp / "train_info.json").read_text())
    assert set(info) == {"num_params", "updates", "train_hours", "audio_hours_seen", "init"}
    model = build_model(ModelConfig.preset("tiny", num_negatives=10), task="pretrain")
    assert info["num_params"] == sum(p.numel() for p in model.parameters())
    assert info["updates"] == 6 and info["init"] == "scratch" and info["audio_hours_seen"] > 0
    logs = list((exp / "log").glob("log-train-pretrain-*"))
    assert logs and "update 6" in logs[0].read_text()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert TB_TAGS <= tags and "valid/loss" in tags
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]


def test_truncated_newest_checkpoint_is_skipped_on_resume(run, tmp_path, caplog, helpers):
    cfg, exp, _ = run
    copy = tmp_path / "exp"
    shutil.copytree(exp, copy)
    newest = copy / "checkpoints" / "ckpt-6.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    Trainer(cfg, PretrainTask(cfg), copy).fit()
    assert "skipping corrupt checkpoint" in caplog.text and "ckpt-6.pt" in caplog.text
    assert "resuming from" in caplog.text and "ckpt-3.pt (update 3)" in caplog.text
    assert load_checkpoint(newest)["update"] == 6
    # and the resumed updates 4-6 repeat the original ones exactly
    original, again = helpers.read_metrics(exp), helpers.read_metrics(copy)
    for u in (4, 5, 6):
        assert abs(original[u]["loss"] - again[u]["loss"]) <= 1e-6
        assert abs(original[u]["grad_norm"] - again[u]["grad_norm"]) <= 1e-6


class NanTask(PretrainTask):
    """Returns a NaN loss on the ``compute_loss`` calls listed in ``nan_calls`` (0-based)."""

    nan_calls: set[int] = set()
    calls = 0

    def compute_loss(self, model, batch):
        loss, metrics = super().compute_loss(model, batch)
        if self.calls in self.nan_calls:
            loss = loss * float("nan")
        self.calls += 1
        return loss, metrics


def test_nan_update_is_skipped_and_counted(corpus, tmp_path, helpers):
    cfg = ExperimentConfig.from_dict(
        helpers.tiny_pretrain_config(corpus, max_consecutive_nonfinite=2)
    )
    task = NanTask(cfg)
    trainer = Trainer(cfg, task, tmp_path)
    trainer._build()
    groups = trainer._micro_batches()
    assert trainer.train_step(next(groups)) is not None  # update 0 -> 1
    before = {k: v.clone() for k, v in trainer.raw_model.state_dict().items()}
    adam_steps = [s["step"].item() for s in trainer.optimizer.state.values()]
    task.nan_calls = {1, 2}
    assert trainer.train_step(next(groups)) is None
    assert trainer.update == 1 and trainer.nonfinite_total == 1
    for k, v in trainer.raw_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [s["step"].item() for s in trainer.optimizer.state.values()] == adam_steps
    assert all(p.grad is None for p in trainer.raw_model.parameters())
    with pytest.raises(NonFiniteError, match="2 updates in a row"):
        trainer.train_step(next(groups))


def test_nan_skips_are_counted_in_a_run(corpus, tmp_path, helpers):
    cfg = ExperimentConfig.from_dict(
        helpers.tiny_pretrain_config(corpus, max_updates=3, save_interval=100)
    )
    task = NanTask(cfg)
    task.nan_calls = {1}
    Trainer(cfg, task, tmp_path).fit()
    m = helpers.read_metrics(tmp_path)
    assert sorted(m) == [1, 2, 3] and m[1]["nonfinite_skipped"] == 0
    assert m[2]["nonfinite_skipped"] == 1 and m[3]["nonfinite_skipped"] == 1


def test_sigterm_checkpoints_and_exits_cleanly(corpus, tmp_path, helpers):
    config = helpers.write_config(
        tmp_path / "c.yaml",
        helpers.tiny_pretrain_config(corpus, max_updates=1000, save_interval=1000),
    )
    proc = helpers.cli("pretrain", "--config", str(config), "--exp-dir", str(tmp_path / "exp"))
    metrics = tmp_path / "exp" / "log" / "train_metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "stopping on signal 15" in out
    update = max(helpers.read_metrics(tmp_path / "exp"))
    ckpt = load_checkpoint(tmp_path / "exp" / "checkpoints" / f"ckpt-{update}.pt")
    assert 2 <= ckpt["update"] < 1000


def test_unknown_override_is_a_clear_error(corpus, tmp_path, capsys, helpers):
    config = helpers.write_config(tmp_path / "c.yaml", helpers.tiny_pretrain_config(corpus))
    rc = pretrain.main(
        ["--config", str(config), "--exp-dir", str(tmp_path / "e"), "trainer.max_update=3"]
    )
    assert rc == 2
    assert "unknown config key 'trainer.max_update'" in capsys.readouterr().err
    rc = pretrain.main(
        ["--config", str(config), "--exp-dir", str(tmp_path / "e"), "model.mask_probb=0.1"]
    )
    assert rc == 2 and "mask_probb" in capsys.readouterr().err


def test_activation_checkpointing_gives_the_same_gradients(corpus):
    from lhotse import CutSet

    from hourglass_w2v2.data.datasets import PretrainDataset
    from hourglass_w2v2.training.rng import seed_everything
    from hourglass_w2v2.training.trainer import enable_activation_checkpointing

    batch = PretrainDataset(seed=0)[CutSet.from_file(corpus["train"]).subset(first=2)]
    grads = []
    for use in (False, True):
        seed_everything(0)
        model = build_model(ModelConfig.preset("tiny-hourglass", num_negatives=10))
        if use:
            assert enable_activation_checkpointing(model) == 4
        seed_everything(1)
        model(batch["waveforms"]).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-6)


def test_health_failure_stops_with_a_checkpoint(corpus, tmp_path, helpers, caplog):
    from hourglass_w2v2.training.trainer import HealthError

    cfg = helpers.tiny_pretrain_config(corpus, max_updates=5, save_interval=100)
    # a perplexity floor above the codebook size: "collapse" from the first verdict on
    cfg["health"] = {
        "warmup_updates": 2,
        "window": 2,
        "collapse_perplexity": 1000.0,
        "stop_on_failure": True,
    }
    cfg = ExperimentConfig.from_dict(cfg)
    with pytest.raises(HealthError, match="codebook collapse"):
        Trainer(cfg, PretrainTask(cfg), tmp_path).fit()
    assert "health (update 2): codebook collapse" in caplog.text
    assert load_checkpoint(tmp_path / "checkpoints" / "ckpt-2.pt")["update"] == 2


def test_contrastive_task_is_learned(corpus, tmp_path, helpers, monkeypatch):
    """The whole loop trains every part the contrastive loss depends on: on a 2-utterance set
    (the same batch every update) with the same masks and negatives every update, the loss
    leaves chance log(K+1) and accuracy goes far above chance within 16 updates (fairseq's
    codebook init; the next test draws fresh masks)."""
    from hourglass_w2v2.data.datasets import PretrainDataset
    from hourglass_w2v2.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "shard_seed", lambda *args: 1)
    # and the same crops: the longer utterance's offset is otherwise drawn anew each epoch
    monkeypatch.setattr(PretrainDataset, "set_epoch", lambda self, epoch: None)
    m, chance, _ = _train_on_two_utterances(corpus, tmp_path, helpers, 16)
    assert abs(m[1]["contrastive_loss"] - chance) < 0.3
    last = [m[u] for u in (14, 15, 16)]
    assert max(r["contrastive_loss"] for r in last) < 0.5 * chance
    assert min(r["accuracy"] for r in last) > 0.5  # chance is at most 1 / (1 + 1) here


def test_contrastive_task_is_learned_with_fresh_masks(corpus, tmp_path, helpers, monkeypatch):
    """The same 2 utterances every update, but fresh masks, negatives and Gumbel noise each
    time (the trainer's per-update seeds): the context network has to predict masked codes it
    has not seen masked in that pattern before, from their surroundings. Within 120 updates the
    loss leaves chance and accuracy on the last updates is many times chance."""
    from hourglass_w2v2.data.datasets import PretrainDataset

    # the same crops of the 2 utterances every update (offsets otherwise change each epoch)
    monkeypatch.setattr(PretrainDataset, "set_epoch", lambda self, epoch: None)
    updates = 120
    m, chance_loss, chance_acc = _train_on_two_utterances(
        corpus, tmp_path, helpers, updates, codebook_init="centered"
    )
    assert abs(m[1]["contrastive_loss"] - chance_loss) < 0.3
    last = [m[u] for u in range(updates - 4, updates + 1)]
    # measured: loss 0.15-0.69 (chance 2.40), accuracy 0.83-1.0 (chance 0.09)
    assert sum(r["contrastive_loss"] for r in last) / len(last) < 0.5 * chance_loss
    assert sum(r["accuracy"] for r in last) / len(last) > 5 * chance_acc


def _train_on_two_utterances(corpus, tmp_path, helpers, updates, **model):
    """Pretrain tiny on the first 2 training utterances (one batch) at a constant lr 2e-3;
    return the per-update metrics and chance loss and accuracy."""
    from lhotse import CutSet

    two = tmp_path / "two.jsonl.gz"
    CutSet.from_file(corpus["train"]).subset(first=2).to_file(two)
    cfg = helpers.tiny_pretrain_config(corpus, max_updates=updates, save_interval=1000)
    cfg["data"].update(train_cuts=[str(two)], max_duration=10.0, num_buckets=2)
    cfg["model"].update(mask_length=3, mask_prob=0.4, **model)
    cfg["optim"]["lr"] = 2e-3
    cfg["schedule"] = {"name": "constant", "warmup_updates": 0}
    cfg = ExperimentConfig.from_dict(cfg)
    Trainer(cfg, PretrainTask(cfg), tmp_path / "exp").fit()
    k = cfg.model["num_negatives"]
    return helpers.read_metrics(tmp_path / "exp"), math.log(k + 1), 1 / (k + 1)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_updates(corpus, tmp_path, helpers, precision):
    cfg = ExperimentConfig.from_dict(helpers.tiny_pretrain_config(corpus, precision=precision))
    trainer = Trainer(cfg, PretrainTask(cfg), tmp_path)
    trainer._build()
    assert trainer.scaler.is_enabled() == (precision == "fp16")
    before = trainer.raw_model.final_proj.weight.detach().clone()
    out = trainer.train_step(next(trainer._micro_batches()))
    assert out is not None and math.isfinite(out["loss"]) and math.isfinite(out["grad_norm"])
    assert not torch.equal(before, trainer.raw_model.final_proj.weight)
    assert trainer.raw_model.final_proj.weight.dtype == torch.float32  # master weights


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_speed_options_reach_the_model(corpus, helpers, device):
    """apply_speed_options (the trainer's and the speed benchmark's bare loop's one way to set
    them) turns on each option in the modules it names, and oneDNN linear layers only on CPU
    where oneDNN keeps fp32."""
    from hourglass_w2v2.models.encoder import TransformerEncoder
    from hourglass_w2v2.models.extractor import FeatureExtractor
    from hourglass_w2v2.training.onednn import OneDnnLinear, onednn_gemm_is_fp32
    from hourglass_w2v2.training.trainer import apply_speed_options

    options = dict(activation_checkpointing=True, polyphase_conv_backward=True)
    cfg = ExperimentConfig.from_dict(
        helpers.tiny_pretrain_config(corpus, onednn_linear=True, **options)
    )
    model = PretrainTask(cfg).build_model()
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    apply_speed_options(model, cfg.trainer, torch.device(device))
    (extractor,) = [m for m in model.modules() if isinstance(m, FeatureExtractor)]
    assert [b.polyphase_backward for b in extractor.conv_layers] == [True] * 7
    encoders = [m for m in model.modules() if isinstance(m, TransformerEncoder)]
    assert encoders and all(e.checkpoint_layers for e in encoders)
    onednn = sum(isinstance(m, OneDnnLinear) for m in model.modules())
    assert linears > 0
    assert onednn == (linears if device == "cpu" and onednn_gemm_is_fp32() else 0)
