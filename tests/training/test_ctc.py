"""CTC fine-tuning: loss and metrics by hand, init + freezing, best/averaged checkpoints."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from lhotse import CutSet, MonoCut

from hourglass_w2v2.checkpoint import CHECKPOINT_KEYS, load_checkpoint
from hourglass_w2v2.fileio import atomic_save
from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.ctc_task import CtcTask, ctc_loss_and_stats
from hourglass_w2v2.training.trainer import Trainer


def test_ctc_loss_and_blank_share_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4)
    logits[0, :3, 0] = 10.0  # utterance 0: 3 of its 4 valid frames are blank
    logits[0, 3, 2] = 10.0
    logits[1, :, 0] = -10.0  # utterance 1: no blanks
    lengths = torch.tensor([4, 5])
    padding_mask = torch.arange(5)[None] >= lengths[:, None]
    targets, target_lengths = torch.tensor([2, 1, 3]), torch.tensor([1, 2])
    loss, share = ctc_loss_and_stats(logits, lengths, padding_mask, targets, target_lengths)
    ref = F.ctc_loss(
        logits.log_softmax(-1).transpose(0, 1), targets, lengths, target_lengths, reduction="none"
    )
    assert loss.item() == pytest.approx(ref.mean().item(), rel=1e-6)
    assert share.item() == pytest.approx(3 / 9)


def _relabel(cut, text):
    d = cut.to_dict()
    d["supervisions"][0]["text"] = text
    d["id"] = d["id"] + "-long"
    return MonoCut.from_dict(d)


@pytest.fixture(scope="module")
def finetune(corpus, tmp_path_factory):
    """4 updates from a (random) 'pretrained' tiny checkpoint, encoder frozen for 2."""
    root = tmp_path_factory.mktemp("ft")
    model_cfg = ModelConfig.preset("tiny", num_negatives=10)
    torch.manual_seed(5)
    pretrained = build_model(model_cfg, task="pretrain").state_dict()
    init = root / "pretrained.pt"
    atomic_save(
        {"model": pretrained, "model_config": model_cfg.to_dict(), "task": "pretrain"}, init
    )
    train = CutSet.from_file(corpus["train"])
    long = [_relabel(c, "FACE " * 30 + "FACE") for c in train.subset(first=3)]
    train_path = root / "train.jsonl.gz"
    CutSet.from_cuts(list(train) + long).to_file(train_path)
    cfg = ExperimentConfig.from_dict(
        {
            "task": "ctc",
            "model": {
                "mask_prob": 0.3,
                "mask_length": 3,
                "mask_channel_prob": 0.1,
                "mask_channel_length": 8,
            },
            "data": {
                "train_cuts": [str(train_path)],
                "valid_cuts": [str(corpus["valid"])],
                "max_duration": 3.0,
                "num_workers": 0,
                "num_buckets": 2,
            },
            "optim": {"lr": 1e-3, "weight_decay": 0.0, "eps": 1e-8},
            "schedule": {"name": "tri_stage"},
            "trainer": {
                "max_updates": 4,
                "log_interval": 1,
                "save_interval": 2,
                "valid_interval": 2,
                "device": "cpu",
                "progress": False,
                "seed": 1,
            },
            "ctc": {
                "lang_dir": str(corpus["lang"]),
                "init": str(init),
                "freeze_encoder_updates": 2,
                "average_last": 2,
            },
        }
    )
    exp = root / "exp"
    task = CtcTask(cfg)
    Trainer(cfg, task, exp).fit()
    return cfg, exp, pretrained, task


def test_finetune_run(finetune, helpers, caplog):
    cfg, exp, pretrained, task = finetune
    m = helpers.read_metrics(exp)
    assert sorted(m) == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and 0.0 <= r["blank_share"] <= 1.0 for r in m.values())
    ckpt = load_checkpoint(exp / "checkpoints" / "ckpt-4.pt")
    assert set(ckpt) == set(CHECKPOINT_KEYS)
    assert ckpt["task"] == "ctc" and ckpt["vocab_size"] == task.tokenizer.vocab_size
    assert ckpt["lang_dir"] == str(cfg.ctc.lang_dir)
    assert ModelConfig.from_dict(ckpt["model_config"]).mask_channel_prob == 0.1


def test_init_and_freezing(finetune):
    _, exp, pretrained, _ = finetune
    at2 = load_checkpoint(exp / "checkpoints" / "ckpt-2.pt")["model"]
    at4 = load_checkpoint(exp / "checkpoints" / "ckpt-4.pt")["model"]
    backbone = [k for k in at2 if not k.startswith("ctc_head.")]
    assert set(backbone) <= set(pretrained)
    # encoder frozen for 2 updates: the backbone is still exactly the pretrained one
    assert all(torch.equal(at2[k], pretrained[k]) for k in backbone)
    assert not torch.equal(at2["ctc_head.weight"], at4["ctc_head.weight"])
    changed = [k for k in backbone if not torch.equal(at4[k], pretrained[k])]
    assert any(k.startswith("encoder.") for k in changed)
    # the feature extractor never trains
    assert not any(k.startswith("feature_extractor.") for k in changed)


def test_long_labels_were_dropped(finetune, corpus):
    _, exp, _, _ = finetune
    log = next((exp / "log").glob("log-train-ctc-*")).read_text()
    assert "train: dropped 3 cuts whose label is too long" in log


def test_best_and_averaged(finetune):
    _, exp, _, _ = finetune
    ckpts = exp / "checkpoints"
    best = load_checkpoint(ckpts / "best.pt")
    c2, c4 = (load_checkpoint(ckpts / f"ckpt-{u}.pt")["model"] for u in (2, 4))
    avg = load_checkpoint(ckpts / "averaged.pt")["model"]
    for k in c4:
        if c4[k].is_floating_point():
            torch.testing.assert_close(avg[k], (c2[k] + c4[k]) / 2)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp / "tensorboard"))
    acc.Reload()
    wers = [e.value for e in acc.Scalars("valid/wer")]
    assert [e.step for e in acc.Scalars("valid/wer")] == [2, 4]
    assert best["metrics"]["trainer"]["best_valid"] == pytest.approx(min(wers))
    assert best["update"] == [2, 4][wers.index(min(wers))]
    assert "train/blank_share" in acc.Tags()["scalars"]


def test_only_blanks_is_reported(finetune, caplog):
    cfg, _, _, task = finetune
    model = task.build_model()
    with torch.no_grad():
        model.ctc_head.bias[0] = 1e4
    model.eval()
    with caplog.at_level(logging.WARNING), torch.no_grad():
        metrics = task.validate(model)
    assert metrics["only_blanks"] == 1.0 and metrics["blank_share"] == 1.0
    assert metrics["wer"] == 100.0
    assert "emits only blanks" in caplog.text
    # WER 100 of an all-blank model would beat a real model's early WER > 100 (insertions):
    # it is never a candidate for best.pt
    assert task.selection_score(metrics) is None
    assert task.selection_score({**metrics, "only_blanks": 0.0, "wer": 101.5}) == 101.5


def test_best_metric_is_checked(corpus, tmp_path):
    with pytest.raises(ValueError, match="'ctc.best_metric' = 'wre' is not one of wer, cer"):
        ExperimentConfig.from_dict(  # checked when the config is loaded
            {
                "task": "ctc",
                "ctc": {
                    "lang_dir": str(corpus["lang"]),
                    "init_from_scratch": True,
                    "best_metric": "wre",
                },
            }
        )


def test_init_is_required(corpus):
    cfg = ExperimentConfig.from_dict({"task": "ctc", "ctc": {"lang_dir": str(corpus["lang"])}})
    with pytest.raises(ValueError, match="ctc.init"):
        CtcTask(cfg)


@pytest.mark.parametrize("pretrained, finetuned", [(True, False), (False, True)])
def test_init_trained_with_another_normalisation_is_refused(
    corpus, tmp_path, pretrained, finetuned
):
    cfg = ModelConfig.preset("tiny")
    init = tmp_path / "ckpt-10.pt"
    atomic_save(
        {
            "model": build_model(cfg, task="pretrain").state_dict(),
            "model_config": cfg.to_dict(),
            "config": {"data": {"normalize": pretrained}},
        },
        init,
    )
    ctc = {"lang_dir": str(corpus["lang"]), "init": str(init)}
    data = {"normalize": finetuned}
    with pytest.raises(ValueError) as e:
        CtcTask(ExperimentConfig.from_dict({"task": "ctc", "ctc": ctc, "data": data}))
    assert str(e.value) == (
        f"ctc.init {init} was trained with data.normalize: {str(pretrained).lower()} and this "
        f"fine-tuning has data.normalize: {str(finetuned).lower()}; set data.normalize as in "
        "the pretraining"
    )
    data = {"normalize": pretrained}  # the same: accepted
    CtcTask(ExperimentConfig.from_dict({"task": "ctc", "ctc": ctc, "data": data}))


def test_reset_top_layers_is_refused_from_scratch(corpus):
    ctc = {"lang_dir": str(corpus["lang"]), "init_from_scratch": True, "reset_top_layers": 1}
    with pytest.raises(ValueError, match="reset_top_layers .* needs ctc.init"):
        CtcTask(ExperimentConfig.from_dict({"task": "ctc", "ctc": ctc}))


def test_init_from_fairseq_and_hf_checkpoints(corpus, tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    from hourglass_w2v2.convert import from_huggingface, to_fairseq

    torch.manual_seed(0)
    ours = build_model(ModelConfig.preset("tiny-hourglass"), task="pretrain")
    to_fairseq(ours, tmp_path / "fairseq.pt")
    hf = Wav2Vec2ForPreTraining(
        Wav2Vec2Config(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            conv_dim=(32,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
            codevector_dim=32,
            proj_codevector_dim=32,
            num_codevectors_per_group=8,
        )
    )
    hf.save_pretrained(tmp_path / "hf")
    expected = {"fairseq.pt": ours.state_dict(), "hf": from_huggingface(hf).state_dict()}
    for name, ref in expected.items():
        cfg = ExperimentConfig.from_dict(
            {"task": "ctc", "ctc": {"lang_dir": str(corpus["lang"]), "init": str(tmp_path / name)}}
        )
        model = CtcTask(cfg).build_model()
        got = model.state_dict()
        shared = [k for k in got if not k.startswith("ctc_head.")]
        assert shared and all(torch.equal(got[k], ref[k]) for k in shared), name
    bad = tmp_path / "bad.pt"
    torch.save({"weights": 1}, bad)
    cfg = ExperimentConfig.from_dict(
        {"task": "ctc", "ctc": {"lang_dir": str(corpus["lang"]), "init": str(bad)}}
    )
    with pytest.raises(ValueError, match="bad.pt is neither"):
        CtcTask(cfg)


def test_init_from_an_experiment_dir_takes_its_newest_checkpoint(corpus, tmp_path):
    cfg = ModelConfig.preset("tiny")
    states = {}
    for update in (5, 40, 200):  # 200 sorts before 40 as text: the number decides
        torch.manual_seed(update)
        states[update] = build_model(cfg, task="pretrain").state_dict()
        path = tmp_path / "exp" / "checkpoints" / f"ckpt-{update}.pt"
        atomic_save({"model": states[update], "model_config": cfg.to_dict()}, path)
    (tmp_path / "exp/checkpoints/ckpt-900.pt.corrupt").write_bytes(b"set aside")

    def task(init):
        ctc = {"lang_dir": str(corpus["lang"]), "init": str(init)}
        return CtcTask(ExperimentConfig.from_dict({"task": "ctc", "ctc": ctc}))

    got = task(tmp_path / "exp").build_model().state_dict()
    shared = [k for k in got if not k.startswith("ctc_head.")]
    assert shared and all(torch.equal(got[k], states[200][k]) for k in shared)
    assert not torch.equal(got[shared[0]], states[40][shared[0]])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as e:
        task(tmp_path / "empty")
    assert str(e.value) == (
        f"ctc.init: {tmp_path / 'empty'} is a directory with neither config.json (an HF model "
        "dir) nor checkpoints/ckpt-<update>.pt (an experiment dir)"
    )


def test_reset_top_layers_after_loading_the_backbone(corpus, tmp_path):
    torch.manual_seed(0)
    model_cfg = ModelConfig.preset("tiny-hourglass")
    pretrained = build_model(model_cfg, task="pretrain").state_dict()
    init = tmp_path / "pretrained.pt"
    atomic_save({"model": pretrained, "model_config": model_cfg.to_dict()}, init)
    ctc = {"lang_dir": str(corpus["lang"]), "init": str(init), "reset_top_layers": 1}
    got = CtcTask(ExperimentConfig.from_dict({"task": "ctc", "ctc": ctc})).build_model()
    got = got.state_dict()
    # a fresh random init's LayerNorm gains are ones as in the checkpoint: compare the matrices
    top = [k for k in got if k.startswith("encoder.layers.3.") and got[k].ndim == 2]
    rest = [k for k in got if not k.startswith(("encoder.layers.3.", "ctc_head."))]
    assert top and not any(torch.equal(got[k], pretrained[k]) for k in top)
    assert rest and all(torch.equal(got[k], pretrained[k]) for k in rest)
