"""Config values are checked against their type and range when the config is loaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hourglass_w2v2.bin import pretrain
from hourglass_w2v2.training.config import ConfigError, ExperimentConfig, load_config

EGS = Path(__file__).resolve().parents[2] / "egs"


@pytest.mark.parametrize(
    "override,message",
    [
        ("trainer.max_updates=-5", r"'trainer\.max_updates' = -5 is out of range: must be >= 1"),
        ("optim.lr=-1e-3", r"'optim\.lr' = -0\.001 is out of range: must be > 0"),
        ("optim.lr=abc", r"'optim\.lr' = 'abc' \(str\) is not a number"),
        ("optim.lr=.nan", r"'optim\.lr' = nan is out of range: must be > 0"),
        ("optim.lr=true", r"'optim\.lr' = True \(bool\) is not a number"),
        ("trainer.save_interval=2.5", r"'trainer\.save_interval' = 2\.5 \(float\) is not an int"),
        ("optim.betas=[0.9, 1.5]", r"'optim\.betas\[1\]' = 1\.5 .*: must be >= 0 and < 1"),
        ("optim.betas=[0.9]", r"'optim\.betas' = \[0\.9\] must be a list of 2 values"),
        ("data.train_parts=pretrain", r"'data\.train_parts' = 'pretrain' \(str\) is not a list"),
        ("data.speed_perturb=[0.9, 0]", r"'data\.speed_perturb\[1\]' = 0\.0 .*: must be > 0"),
        ("trainer.precision=fp8", r"'trainer\.precision' = 'fp8' is not one of fp32, bf16, fp16"),
        ("health.enabled=5", r"'health\.enabled' = 5 \(int\) is not a boolean \(true/false\)"),
        ("ctc.only_blank_threshold=1.5", r"must be >= 0 and <= 1"),
        ("data.valid_max_cuts=0", r"'data\.valid_max_cuts' = 0 is out of range: must be >= 1"),
        # the model section: ModelConfig's fields, checked by the same rules
        ("model.dropout=1.5", r"'model\.dropout' = 1\.5 is out of range: must be >= 0 and < 1"),
        ("model.num_negatives=ten", r"'model\.num_negatives' = 'ten' \(str\) is not an int"),
        ("model.latent_temp=[2, 0.5, 1.5]", r"'model\.latent_temp\[2\]' = 1\.5 .*: must be <= 1"),
        ("model.preset=tiny-hourglas", r"'model\.preset' = 'tiny-hourglas' is not one of tiny, "),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_range(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [override])
    assert "command-line override" in str(err.value)
    assert isinstance(err.value, ValueError)  # the CLIs turn it into exit status 2


def test_a_bad_value_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  keep_last: -1\n")
    where = re.escape(f"(in {path})")
    with pytest.raises(ConfigError, match=rf"'trainer\.keep_last' = -1 .* {where}"):
        load_config(path)


def test_an_unknown_model_key_is_named_when_the_config_is_loaded(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  preset: tiny\n  mask_lenght: 3\n")
    with pytest.raises(ValueError, match=r"unknown config key 'model\.mask_lenght' \(known: "):
        load_config(path)


def test_good_values_are_converted_to_the_declared_type():
    cfg = load_config(
        None,
        [
            "optim.lr=1",  # an int where a float is declared
            "trainer.max_updates=4e5",  # an integral float where an int is declared
            "data.valid_max_duration=null",
            "data.speed_perturb=[0.9, 1.1]",
        ],
    )
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.trainer.max_updates == 400_000 and isinstance(cfg.trainer.max_updates, int)
    assert cfg.data.valid_max_duration is None and cfg.data.speed_perturb == [0.9, 1.1]
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


def test_every_recipe_config_is_valid():
    configs = sorted(EGS.glob("*/*/conf/*.yaml"))
    assert configs
    for path in configs:
        load_config(path)


def test_cli_exits_2_with_the_message_and_no_traceback(corpus, tmp_path, capsys, helpers):
    config = helpers.write_config(tmp_path / "c.yaml", helpers.tiny_pretrain_config(corpus))
    for bad in ("trainer.max_updates=-5", "optim.lr=-1e-3", "optim.lr=abc"):
        rc = pretrain.main(["--config", str(config), "--exp-dir", str(tmp_path / "e"), bad])
        err = capsys.readouterr().err
        assert rc == 2, bad
        assert bad.split("=")[0] in err and "Traceback" not in err
    assert not (tmp_path / "e").exists()  # nothing was started


def test_check_config_reports_the_first_problem_and_trains_nothing(corpus, tmp_path, capsys,
                                                                   helpers):
    config = helpers.write_config(tmp_path / "c.yaml", helpers.tiny_pretrain_config(corpus))
    exp = tmp_path / "e"
    cases = [
        ([], 0, "c.yaml: config, model and data are in order"),
        (["model.layerdrop=1"], 2, "error: config key 'model.layerdrop' = 1.0 is out of range: "
         "must be >= 0 and < 1 (command-line override model.layerdrop=1)"),
        (["model.mask_lenght=3"], 2, "error: unknown config key 'model.mask_lenght' (known: "),
        ([f"data.valid_cuts=[{tmp_path}/none.jsonl.gz]"], 2,
         f"error: data.valid_cuts: cut set {tmp_path}/none.jsonl.gz does not exist"),
    ]
    for overrides, status, message in cases:
        rc = pretrain.main(["--config", str(config), "--exp-dir", str(exp), "--check-config",
                            *overrides])
        err = capsys.readouterr().err
        assert rc == status, (overrides, err)
        assert message in err and "Traceback" not in err
    assert not exp.exists()
