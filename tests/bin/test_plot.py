"""bin.plot on fake experiment directories whose metrics and summaries are known."""

import json
import logging
import struct

import pytest
from torch.utils.tensorboard import SummaryWriter

from hourglass_w2v2.bin import plot

PRETRAIN_LINES = [
    {"update": 1, "loss": 4.5, "accuracy": 0.01, "code_perplexity": 90.0, "lr": 1e-4,
     "sample_size": 200, "audio_seconds": 20.0},
    {"update": 10, "loss": 4.0, "accuracy": 0.10, "code_perplexity": 150.0, "lr": 5e-4,
     "sample_size": 210, "audio_seconds": 20.0},
    {"update": 20, "loss": 3.2, "accuracy": 0.35, "code_perplexity": 210.0, "lr": 4e-4,
     "sample_size": 205, "audio_seconds": 20.0},
]
FINETUNE_LINES = [
    {"update": 1, "loss": 300.0, "blank_share": 0.2, "lr": 1e-5},
    {"update": 25, "loss": 120.0, "blank_share": 0.9, "lr": 5e-5},
]
SUMMARIES = {  # method -> test set -> (WER by key, CER by key)
    "ctc-greedy": {"test-clean": ({"greedy": 40.0}, {"greedy": 15.5}),
                   "test-other": ({"greedy": 55.25}, {"greedy": 21.0})},
    "1best-HLG": {"test-clean": ({"lm_scale_0.6": 30.0, "lm_scale_1": 28.5},
                                 {"lm_scale_0.6": 14.0, "lm_scale_1": 14.75})},
}


def write_metrics(exp, lines):
    (exp / "log").mkdir(parents=True)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (exp / "log" / "train_metrics.jsonl").write_text(text)


def write_summary(path, metric, rates):
    lines = [f"settings\t{metric}"] + [f"{k}\t{v:.2f}" for k, v in sorted(rates.items())]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def exps(tmp_path):
    pre, ft, empty = tmp_path / "pre", tmp_path / "ft", tmp_path / "empty"
    write_metrics(pre, PRETRAIN_LINES)
    writer = SummaryWriter(str(pre / "tensorboard"))
    for step, value in ((10, 4.2), (20, 3.5)):
        writer.add_scalar("valid/loss", value, step)
    writer.close()
    write_metrics(ft, FINETUNE_LINES)
    for method, by_test in SUMMARIES.items():
        d = ft / "decode" / method
        d.mkdir(parents=True)
        for test, (wers, cers) in by_test.items():
            write_summary(d / f"wer-summary-{test}.txt", "WER", wers)
            write_summary(d / f"cer-summary-{test}.txt", "CER", cers)
    empty.mkdir()
    return pre, ft, empty


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def series(lines, metric):
    kept = [line for line in lines if metric in line]
    return [line["update"] for line in kept], [line[metric] for line in kept]


def test_cli_draws_the_input_data(exps, tmp_path, caplog):
    pre, ft, empty = exps
    out = tmp_path / "png"
    with caplog.at_level(logging.WARNING):
        drawn = plot.main([str(pre), str(ft), str(empty), "--out", str(out), "--prefix", "t_"])
    files = {p.name: p for p in drawn}
    assert sorted(files) == ["t_results.png", "t_train_curves.png", "t_valid_curves.png"]
    for path in files.values():
        width, height = png_size(path)
        assert 300 <= width <= 2000 and 200 <= height <= 2000, (path, width, height)
        assert 5_000 < path.stat().st_size < 200_000

    train = drawn[files["t_train_curves.png"]]
    # bookkeeping columns are not curves; each metric has a line per experiment that logged it
    assert set(train) == {"loss", "accuracy", "code_perplexity", "lr", "blank_share"}
    assert train["accuracy"] == {"pre": series(PRETRAIN_LINES, "accuracy")}
    assert train["blank_share"] == {"ft": series(FINETUNE_LINES, "blank_share")}
    assert train["lr"] == {"pre": series(PRETRAIN_LINES, "lr"), "ft": series(FINETUNE_LINES, "lr")}

    valid = drawn[files["t_valid_curves.png"]]
    assert valid == {"loss": {"pre": ([10, 20], [pytest.approx(4.2), pytest.approx(3.5)])}}

    # each bar is the best key of an experiment and method
    assert drawn[files["t_results.png"]] == {
        "WER": {"ft 1best-HLG": {"test-clean": 28.5},
                "ft ctc-greedy": {"test-clean": 40.0, "test-other": 55.25}},
        "CER": {"ft 1best-HLG": {"test-clean": 14.0},
                "ft ctc-greedy": {"test-clean": 15.5, "test-other": 21.0}},
    }
    nothing = [r.getMessage() for r in caplog.records if "nothing to plot" in r.getMessage()]
    assert len(nothing) == 1 and str(empty) in nothing[0]


def test_malformed_files_are_named_and_left_out(exps, tmp_path, caplog):
    pre, ft, _ = exps
    metrics = pre / "log" / "train_metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"update": 30, "loss": 2.\n')  # cut by a kill
    write_summary(ft / "decode" / "ctc-greedy" / "wer-summary-test-other.txt", "WER",
                  {"greedy": float("nan")})
    with caplog.at_level(logging.WARNING):
        drawn = plot.main([str(pre), str(ft), "--out", str(tmp_path / "png")])
    warnings = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{metrics}:4: not a metrics line" in warnings
    assert "wer-summary-test-other.txt:2" in warnings
    train = drawn[tmp_path / "png" / "train_curves.png"]
    assert train["loss"]["pre"] == series(PRETRAIN_LINES, "loss")  # the good lines still drawn
    results = drawn[tmp_path / "png" / "results.png"]
    assert results["WER"]["ft ctc-greedy"] == {"test-clean": 40.0}

    with pytest.raises(SystemExit, match="--strict"):
        plot.main([str(pre), str(ft), "--out", str(tmp_path / "png2"), "--strict"])


def test_metrics_option_and_nothing_to_plot(exps, tmp_path):
    pre, _, empty = exps
    drawn = plot.main([str(pre), "--out", str(tmp_path), "--metrics", "accuracy,lr"])
    assert set(drawn[tmp_path / "train_curves.png"]) == {"accuracy", "lr"}
    assert tmp_path / "valid_curves.png" not in drawn  # valid/loss was not asked for
    with pytest.raises(SystemExit, match=f"nothing to plot in {empty}"):
        plot.main([str(empty), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no such experiment directory: .*missing"):
        plot.main([str(tmp_path / "missing")])
