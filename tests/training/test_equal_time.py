"""bin.equal_time: the update count that gives one pretraining config another's wall time."""

from __future__ import annotations

import json

import pytest

from hourglass_w2v2.bin import equal_time


def test_equal_time_scales_the_reference_updates_by_the_measured_speeds(
    corpus, tmp_path, capsys, helpers
):
    ref = helpers.write_config(tmp_path / "ref.yaml", helpers.tiny_pretrain_config(corpus))
    cand_cfg = helpers.tiny_pretrain_config(corpus)
    cand_cfg["model"]["preset"] = "tiny-hourglass"
    cand = helpers.write_config(tmp_path / "cand.yaml", cand_cfg)
    out_dir = tmp_path / "timing"
    argv = [
        "--reference",
        str(ref),
        "--reference-updates",
        "1000",
        "--config",
        str(cand),
        "--exp-dir",
        str(out_dir),
        "--timing-updates",
        "3",
        "--skip",
        "1",
    ]
    assert equal_time.main(argv) == 0
    printed = int(capsys.readouterr().out)
    record = json.loads((out_dir / "equal_time.json").read_text())
    ratio = record["reference_seconds_per_update"] / record["candidate_seconds_per_update"]
    assert printed == round(1000 * ratio) and printed > 0
    # both timing runs trained exactly skip + timed updates, without validation
    for name in ("reference", "candidate"):
        assert (out_dir / name / "checkpoints" / "ckpt-4.pt").is_file()
        assert not (out_dir / name / "checkpoints" / "ckpt-6.pt").exists()
    # a second call reads the record instead of timing again
    (out_dir / "reference").rename(out_dir / "gone")
    assert equal_time.main([*argv[:3], "500", *argv[4:]]) == 0
    assert int(capsys.readouterr().out) == round(500 * ratio)
    assert not (out_dir / "reference").exists()
    # other configs: the record does not apply, both are timed again
    swapped = [*argv[:1], str(cand), *argv[2:5], str(ref), *argv[6:]]
    assert equal_time.main(swapped) == 0
    capsys.readouterr()
    assert (out_dir / "reference" / "checkpoints" / "ckpt-4.pt").is_file()
    assert json.loads((out_dir / "equal_time.json").read_text())["reference"] == str(cand)


def test_equal_time_refuses_a_fine_tuning_config(corpus, tmp_path, helpers):
    ref = helpers.write_config(tmp_path / "ref.yaml", helpers.tiny_pretrain_config(corpus))
    bad = helpers.write_config(tmp_path / "ctc.yaml", {"task": "ctc"})
    with pytest.raises(SystemExit, match="ctc.yaml is a 'ctc' config, expected 'pretrain'"):
        equal_time.main(
            [
                "--reference",
                str(bad),
                "--reference-updates",
                "10",
                "--config",
                str(ref),
                "--exp-dir",
                str(tmp_path / "t"),
            ]
        )
