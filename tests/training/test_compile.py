"""``trainer.compile: true`` (torch.compile of the model) trains like eager mode (slow: compiling
takes a minute or two on a CPU)."""

from __future__ import annotations

import pytest

from hourglass_w2v2.training.config import ExperimentConfig
from hourglass_w2v2.training.pretrain_task import PretrainTask
from hourglass_w2v2.training.trainer import Trainer


@pytest.mark.slow
def test_compiled_pretraining_matches_eager(corpus, tmp_path, helpers):
    metrics = {}
    for mode in ("eager", "compiled"):
        cfg = helpers.tiny_pretrain_config(corpus, max_updates=4, save_interval=4)
        cfg["trainer"]["compile"] = mode == "compiled"
        cfg = ExperimentConfig.from_dict(cfg)
        Trainer(cfg, PretrainTask(cfg), tmp_path / mode).fit()
        metrics[mode] = helpers.read_metrics(tmp_path / mode)
    eager, compiled = metrics["eager"], metrics["compiled"]
    assert sorted(eager) == sorted(compiled) == [1, 2, 3, 4]
    for u in eager:  # same batches, masks and negatives; only the kernels differ
        for key in ("loss", "contrastive_loss", "accuracy"):
            assert compiled[u][key] == pytest.approx(eager[u][key], abs=1e-3), (u, key)
    assert eager[4]["loss"] < eager[1]["loss"]
