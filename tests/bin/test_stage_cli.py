"""The recipe-stage entry points end an input error with its message logged and status 1."""

import logging

import pytest

from hourglass_w2v2.bin import prepare_cuts, prepare_finetune_subsets, prepare_manifests


def _exit_status(main, argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    return err.value.code


def test_input_errors_are_logged_and_exit_1(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    manifests = ["--manifest-dir", str(tmp_path / "manifests"), "--prefix", "synth"]
    nope = tmp_path / "nope"
    assert _exit_status(prepare_manifests.main, ["--corpus-dir", str(nope), *manifests]) == 1
    assert f"corpus folder not found: {nope}" in caplog.text
    assert _exit_status(prepare_finetune_subsets.main,
                        ["--finetuning-dir", str(nope), *manifests]) == 1
    assert f"Libri-Light fine-tuning folder(s) missing under {nope}: 1h/0/clean" in caplog.text
    assert _exit_status(prepare_cuts.main, [*manifests, "--parts", "dev-clean",
                                            "--pretrain-parts", "dev-clean"]) == 1
    assert "synth_recordings_dev-clean.jsonl.gz" in caplog.records[-1].getMessage()
    assert all(r.levelname == "ERROR" for r in caplog.records[-1:])
    assert not (tmp_path / "manifests").exists() or not any((tmp_path / "manifests").iterdir())
