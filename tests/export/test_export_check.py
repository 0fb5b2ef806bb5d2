"""bin.export --verify (decoding/export_check.py): the check of an export on a test set.

A random model over the toy lang dir decodes 8 generated utterances written as a cut set. The
report's WERs are recomputed here from independent decodes (PyTorch greedy and the sherpa-onnx
folder), and an export swapped for another model's is caught: the check names the log-prob
difference and the greedy disagreement, and the CLI exits with status 1.
"""

import shutil

import kaldialign
import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, SupervisionSegment

from hourglass_w2v2.bin import export as export_cli
from hourglass_w2v2.checkpoint import load_ctc_model
from hourglass_w2v2.decoding.export_check import TOLERANCES, Report, check, verify_export
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.export.sherpa import SherpaCtc
from hourglass_w2v2.lang.tokenizer import Tokenizer

TEXTS = ["THE CAT SAT", "A DOG RAN", "THE DOG SAT THEN", "THE CAT RAN FAST"]


def _cut_set(root, helpers):
    root.mkdir()
    cuts = []
    for i, samples in enumerate(helpers.utterances(8, seed=3)):
        path = root / f"utt{i}.wav"
        sf.write(path, samples, 16000, subtype="FLOAT")
        cut = Recording.from_file(path, recording_id=f"utt{i}").to_cut()
        cut.supervisions = [
            SupervisionSegment(f"utt{i}", f"utt{i}", 0.0, cut.duration, text=TEXTS[i % 4])
        ]
        cuts.append(cut)
    path = root / "toy_cuts_test.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(path)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, toy_lang, helpers):
    root = tmp_path_factory.mktemp("check")
    exp = helpers.make_exp(root / "exp", toy_lang, "tiny", "group_norm", False)
    out = root / "out"
    export_cli.main(["--exp-dir", str(exp), "--format", "onnx", "--out", str(out), "--int8"])
    model, _ = load_ctc_model(exp / "checkpoints" / "ckpt-1.pt", Tokenizer(toy_lang), "cpu")
    return exp, out, model, _cut_set(root / "cuts", helpers)


def _wer(refs, hyps):
    errors = sum(kaldialign.edit_distance(r, h)["total"] for r, h in zip(refs, hyps, strict=True))
    return 100.0 * errors / sum(len(r) for r in refs)


def test_report_equals_independent_decodes(setup, toy_lang):
    _, out, model, cuts_path = setup
    cuts = CutSet.from_file(cuts_path)
    report = verify_export(model, False, out, toy_lang, cuts)
    assert report.utterances == 8
    refs, ours, theirs = [], [], []
    greedy, sherpa = Decoder("ctc-greedy", toy_lang), SherpaCtc(out)
    for cut in cuts:
        samples = cut.load_audio()[0]
        with torch.no_grad():
            lp = model(torch.from_numpy(samples)[None]).logits.log_softmax(-1)[0].numpy()
        refs.append(cut.supervisions[0].text.split())
        ours.append(greedy.decode(lp)["greedy"])
        theirs.append(sherpa.words(samples))
    assert report.wer["PyTorch / greedy"] == pytest.approx(_wer(refs, ours))
    assert report.wer["sherpa-onnx fp32 / greedy"] == pytest.approx(_wer(refs, theirs))
    assert report.wer["onnxruntime fp32 / greedy"] == report.wer["PyTorch / greedy"]
    same = np.mean([a == b for a, b in zip(ours, theirs, strict=True)])
    assert report.greedy_agreement == pytest.approx(same)
    assert set(report.wer) == {
        "PyTorch / greedy",
        "PyTorch / HLG",
        "onnxruntime fp32 / greedy",
        "onnxruntime fp32 / HLG",
        "onnxruntime int8 / greedy",
        "onnxruntime int8 / HLG",
        "sherpa-onnx fp32 / greedy",
        "sherpa-onnx fp32 / HLG",
        "sherpa-onnx int8 / greedy",
        "sherpa-onnx int8 / HLG",
    }
    assert 0 < report.max_log_prob_diff < 1e-4  # two runtimes' fp32 kernels: close, not equal
    table = report.table()
    assert f"| sherpa-onnx fp32 | greedy | {report.wer['sherpa-onnx fp32 / greedy']:.2f} |" in table


def test_check_names_each_tolerance_missed():
    wer = {"PyTorch / greedy": 20.0, "PyTorch / HLG": 10.0, "sherpa-onnx fp32 / HLG": 10.2}
    wer |= {"onnxruntime int8 / greedy": 21.0, "onnxruntime int8 / HLG": 11.0}
    wer |= {"sherpa-onnx int8 / greedy": 30.0}  # sherpa's int8 rows are not graded
    good = Report(10, 1e-4, 0.99, wer)
    assert check(good) == []  # every figure exactly at its limit
    assert check(Report(10, 1e-4, 0.99, {**wer, "onnxruntime int8 / HLG": 5.0})) == []  # better
    bad = Report(
        10, 2e-4, 0.9, {**wer, "sherpa-onnx fp32 / HLG": 10.3, "onnxruntime int8 / HLG": 11.1}
    )
    problems = check(bad)
    assert problems[0] == f"log-probs differ by 2.00e-04 > {TOLERANCES['log_prob']}"
    assert problems[1] == "sherpa-onnx greedy agrees on 90.0% of utterances < 99%"
    assert "sherpa-onnx fp32 / HLG WER 10.30, PyTorch / HLG 10.00: over 0.2 apart" in problems[2]
    assert "onnxruntime int8 / HLG WER 11.10, PyTorch / HLG 10.00: over 1.0 above" in problems[3]
    assert len(problems) == 4


def test_cli_fails_on_an_export_of_another_model(
    setup, tmp_path, toy_lang, helpers, monkeypatch, capsys
):
    exp, out, _, cuts_path = setup
    other = helpers.make_exp(tmp_path / "other", toy_lang, "tiny", "layer_norm", True)
    swapped = tmp_path / "swapped"
    shutil.copytree(out, swapped)
    export_cli.main(["--exp-dir", str(other), "--format", "onnx", "--out", str(tmp_path / "o2")])
    shutil.copy(tmp_path / "o2" / "model.onnx", swapped / "model.onnx")
    # check the swapped folder as is
    monkeypatch.setattr(export_cli, "export", lambda args, loaded: [])
    args = ["--exp-dir", str(exp), "--format", "onnx", "--out", str(swapped)]
    with pytest.raises(SystemExit) as e:
        export_cli.main([*args, "--verify", str(cuts_path)])
    assert str(e.value).startswith("export: the export is not faithful:\n  log-probs differ by ")
    assert "sherpa-onnx greedy agrees on " in str(e.value)
    assert "\ntest: 8 utterances; max |log-prob ONNX - PyTorch| = " in capsys.readouterr().out


def test_verify_needs_onnx(tmp_path):
    with pytest.raises(SystemExit) as e:
        export_cli.main(
            ["--exp-dir", str(tmp_path), "--format", "hf", "--out", str(tmp_path), "--verify", "x"]
        )
    assert e.value.code == 2
