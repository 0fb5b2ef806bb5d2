"""The results table over two fake experiment directories."""

import json
import os

import pytest

from hourglass_w2v2.bin import results as results_cli
from hourglass_w2v2.results import collect, verdict
from hourglass_w2v2.scoring import format_summary, write_group


def write_summaries(out_dir, test, wers, cers):
    """The decoder's ``wer-`` / ``cer-summary-<test>.txt`` pair for ``{key: rate}`` dicts."""
    names = [f"cer-summary-{test}.txt", f"wer-summary-{test}.txt"]
    files = dict(zip(names, (format_summary(cers, "CER"), format_summary(wers)), strict=True))
    write_group(out_dir, files, names)


def make_exp(root, name, init, updates, num_params, decode):
    exp = root / name
    (exp / "decode").mkdir(parents=True)
    (exp / "train_info.json").write_text(
        json.dumps(
            {
                "num_params": num_params,
                "updates": updates,
                "train_hours": 0.25,
                "audio_hours_seen": 1.0,
                "init": init,
            }
        )
    )
    for method, per_test in decode.items():
        d = exp / "decode" / method
        d.mkdir()
        for test, (wers, cers, rtf, audio) in per_test.items():
            write_summaries(d, test, wers, cers)
            (d / f"rtf-{test}.json").write_text(json.dumps({"audio_seconds": audio, "rtf": rtf}))
    return exp


@pytest.fixture
def exps(tmp_path):
    pre = make_exp(
        tmp_path,
        "ft_pretrained",
        "exp/pre/checkpoints/ckpt-3000.pt",
        500,
        3_770_000,
        {
            "ctc-greedy": {
                "test-clean": ({"greedy": 40.0}, {"greedy": 15.5}, 0.02, 100.0),
                "test-other": ({"greedy": 50.0}, {"greedy": 20.0}, 0.04, 100.0),
            },
            "1best-HLG": {
                "test-clean": (
                    {"lm_scale_0.6": 30.0, "lm_scale_1": 31.0},
                    {"lm_scale_0.6": 14.0, "lm_scale_1": 14.5},
                    0.1,
                    50.0,
                )
            },
        },
    )
    scratch = make_exp(
        tmp_path,
        "ft_scratch",
        "scratch",
        500,
        3_770_000,
        {
            "ctc-greedy": {"test-clean": ({"greedy": 90.0}, {"greedy": 45.0}, 0.03, 100.0)},
        },
    )
    # a pretraining dir with no decode results, and an interrupted decode's temporary file
    (tmp_path / "pre").mkdir()
    (pre / "decode" / "ctc-greedy" / ".wer-summary-dev-clean.txt.tmp").write_text("settings\tW")
    return pre, scratch, tmp_path / "pre"


def test_table(exps, tmp_path, capsys):
    pre, scratch, pretrain = exps
    csv_path, md_path = tmp_path / "r.csv", tmp_path / "r.md"
    results_cli.main(
        [str(pre), str(scratch), str(pretrain), "--csv", str(csv_path), "--out", str(md_path)]
    )
    out = capsys.readouterr().out
    assert out == md_path.read_text()
    lines = out.splitlines()
    assert lines[0] == (
        "| experiment | method | key | test-clean WER | test-clean CER | "
        "test-other WER | test-other CER | params (M) | pretrain updates | "
        "ft updates | train hours | decode RTF |"
    )
    assert lines[2:] == [
        "| ft_pretrained | 1best-HLG | lm_scale_0.6 | 30.00 | 14.00 | - | - | 3.77 | 3000 | 500 "
        "| 0.25 | 0.1000 |",
        "| ft_pretrained | 1best-HLG | lm_scale_1 | 31.00 | 14.50 | - | - | 3.77 | 3000 | 500 "
        "| 0.25 | 0.1000 |",
        # RTF weighted by audio: (0.02 * 100 + 0.04 * 100) / 200
        "| ft_pretrained | ctc-greedy | greedy | 40.00 | 15.50 | 50.00 | 20.00 | 3.77 | 3000 | 500 "
        "| 0.25 | 0.0300 |",
        "| ft_scratch | ctc-greedy | greedy | 90.00 | 45.00 | - | - | 3.77 | 0 | 500 | 0.25 "
        "| 0.0300 |",
    ]
    csv_lines = csv_path.read_text().splitlines()
    assert csv_lines[0].startswith("experiment,method,key,test-clean WER,test-clean CER,")
    assert csv_lines[-1] == "ft_scratch,ctc-greedy,greedy,90.00,45.00,-,-,3.77,0,500,0.25,0.0300"


def test_a_full_disk_keeps_the_previous_tables(exps, tmp_path, monkeypatch, capsys):
    """--out and --csv are written to a temporary name and renamed: a failed write keeps the
    previous tables whole."""
    pre, scratch, _ = exps
    csv_path, md_path = tmp_path / "r.csv", tmp_path / "r.md"
    results_cli.main([str(scratch), "--csv", str(csv_path), "--out", str(md_path)])
    before = md_path.read_text(), csv_path.read_text()

    def disk_full(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        results_cli.main([str(pre), str(scratch), "--csv", str(csv_path), "--out", str(md_path)])
    monkeypatch.undo()
    assert (md_path.read_text(), csv_path.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_no_results_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no decode results"):
        results_cli.main([str(tmp_path / "empty")])
    (tmp_path / "results.md").write_text("| a table |\n")  # exp/* matches files too
    with pytest.raises(SystemExit, match="no decode results"):
        results_cli.main([str(tmp_path / "empty"), str(tmp_path / "results.md")])
    with pytest.raises(SystemExit, match="no such experiment directory"):
        results_cli.main([str(tmp_path / "missing")])


def test_baseline_comparison(exps, tmp_path, capsys):
    pre, scratch, _ = exps
    md_path = tmp_path / "r.md"
    results_cli.main([str(pre), str(scratch), "--baseline", str(scratch), "--out", str(md_path)])
    out = capsys.readouterr().out
    assert out == md_path.read_text()
    # only what both have: ctc-greedy on test-clean; (40 - 90) / 90 and (15.5 - 45) / 45
    assert out.split("\n\n")[1].splitlines() == [
        "- ft_pretrained vs ft_scratch, ctc-greedy, test-clean WER: 40.00 (greedy) vs 90.00 "
        "(greedy), -55.6% relative",
        "- ft_pretrained vs ft_scratch, ctc-greedy, test-clean CER: 15.50 (greedy) vs 45.00 "
        "(greedy), -65.6% relative",
    ]
    with pytest.raises(SystemExit, match="baseline 'nope'"):
        results_cli.main([str(pre), str(scratch), "--baseline", "nope"])


def test_bad_files_are_named_and_left_out(exps, tmp_path, capsys, caplog):
    pre, scratch, _ = exps
    bad_summary = scratch / "decode" / "ctc-greedy" / "wer-summary-test-clean.txt"
    bad_summary.write_text("settings\tWER\ngreedy\tnan\n")
    (pre / "train_info.json").write_text('{"num_params": 3770000, "upd')
    (pre / "decode" / "1best-HLG" / "rtf-test-clean.json").write_text("")
    results_cli.main([str(pre), str(scratch)])
    out = capsys.readouterr().out
    lines = out.splitlines()
    # no numbers from the bad files: the NaN WER, train_info.json's fields, 1best-HLG's RTF
    assert lines[2] == (
        "| ft_pretrained | 1best-HLG | lm_scale_0.6 | 30.00 | 14.00 | - | - | - | - | - | - | - |"
    )
    assert lines[5] == (
        "| ft_scratch | ctc-greedy | greedy | - | 45.00 | - | - | 3.77 | 0 | 500 | 0.25 | 0.0300 |"
    )
    notes = out.split("\n\n", 1)[1]
    assert f"{pre / 'train_info.json'}: not valid JSON" in notes
    assert f"{pre / 'decode' / '1best-HLG' / 'rtf-test-clean.json'}: not valid JSON" in notes
    assert f"{bad_summary}:2: WER 'nan' is not a rate" in notes
    assert "left out" in caplog.text and str(bad_summary) in caplog.text
    with pytest.raises(SystemExit, match=r"wer-summary-test-clean.txt:2: WER 'nan' is not a rate"):
        results_cli.main([str(pre), str(scratch), "--strict"])


def _hlg(exp, wers, cers):
    """Add 1best-HLG test-clean summaries to ``exp``."""
    d = exp / "decode" / "1best-HLG"
    d.mkdir(exist_ok=True)
    write_summaries(d, "test-clean", wers, cers)
    (d / "rtf-test-clean.json").write_text(json.dumps({"audio_seconds": 50.0, "rtf": 0.1}))


def test_verdict_sentence_uses_the_best_keys(exps, capsys):
    pre, scratch, _ = exps
    _hlg(
        scratch, {"lm_scale_0.6": 62.0, "lm_scale_1": 60.0}, {"lm_scale_0.6": 30, "lm_scale_1": 31}
    )
    results_cli.main([str(pre), str(scratch), "--baseline", str(scratch), "--verdict"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # best HLG WER 30.0 (lm_scale_0.6) vs 60.0 (lm_scale_1): -50%; greedy CER 15.5 vs 45: -65.6%
    assert last == (
        "Pretraining paid off: on test-clean, ft_pretrained makes 50.0% fewer word errors with "
        "1best-HLG (30.00 vs 60.00) and 65.6% fewer character errors with ctc-greedy "
        "(15.50 vs 45.00) than ft_scratch."
    )


def test_verdict_says_when_pretraining_did_not_pay_off(exps, capsys):
    pre, scratch, _ = exps
    _hlg(scratch, {"lm_scale_1": 20.0}, {"lm_scale_1": 9.0})
    results_cli.main([str(pre), str(scratch), "--baseline", str(scratch), "--verdict"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(
        "Mixed result: on test-clean, ft_pretrained makes 50.0% more word errors"
    )
    # worse on both: the baseline's greedy CER drops below ours
    _hlg(pre, {"lm_scale_1": 25.0}, {"lm_scale_1": 12.0})
    (scratch / "decode" / "ctc-greedy" / "cer-summary-test-clean.txt").write_text(
        "settings\tCER\ngreedy\t10.0\n"
    )
    rows, _ = collect([pre, scratch])
    assert verdict(rows, "ft_pretrained", "ft_scratch") == (
        "Pretraining did not pay off: on test-clean, ft_pretrained makes 25.0% more word errors "
        "with 1best-HLG (25.00 vs 20.00) and 55.0% more character errors with ctc-greedy "
        "(15.50 vs 10.00) than ft_scratch."
    )
    # equal rates
    _hlg(pre, {"lm_scale_1": 20.0}, {"lm_scale_1": 12.0})
    rows, _ = collect([pre, scratch])
    assert verdict(rows, "ft_pretrained", "ft_scratch").startswith(
        "Pretraining did not pay off: on test-clean, ft_pretrained makes as many word errors "
        "with 1best-HLG (20.00 vs 20.00) and 55.0% more"
    )
    (scratch / "decode" / "ctc-greedy" / "cer-summary-test-clean.txt").unlink()
    with pytest.raises(
        SystemExit, match="--verdict: no ctc-greedy CER of ft_scratch on test-clean"
    ):
        results_cli.main([str(pre), str(scratch), "--baseline", str(scratch), "--verdict"])
    with pytest.raises(SystemExit, match="--verdict needs --baseline"):
        results_cli.main([str(pre), str(scratch), "--verdict"])
