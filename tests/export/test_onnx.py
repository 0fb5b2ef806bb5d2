"""bin.export --format onnx: the ONNX model equals PyTorch; sherpa-onnx decodes as we do."""

import kaldialign
import numpy as np
import onnxruntime as ort
import pytest
import torch

from hourglass_w2v2.bin import export as export_cli
from hourglass_w2v2.checkpoint import load_ctc_model
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.export.sherpa import SherpaCtc
from hourglass_w2v2.lang.tokenizer import Tokenizer

# (preset, extractor, data.normalize): the extractor/normalisation pairs wav2vec 2.0 is used
# with (Base: group norm on raw audio, Large: layer norm on normalised audio), and an hourglass
VARIANTS = [
    ("tiny", "group_norm", False),
    ("tiny", "layer_norm", True),
    ("tiny-hourglass", "group_norm", False),
    ("tiny", "group_norm", True),
]


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: "-".join(map(str, v)))
def exported(request, tmp_path_factory, toy_lang, helpers):
    preset, mode, normalize = request.param
    root = tmp_path_factory.mktemp("onnx")
    exp = helpers.make_exp(root / "exp", toy_lang, preset, mode, normalize)
    export_cli.main(
        ["--exp-dir", str(exp), "--format", "onnx", "--out", str(root / "out"), "--int8"]
    )
    tok = Tokenizer(toy_lang)
    model, _ = load_ctc_model(exp / "checkpoints" / "ckpt-1.pt", tok, torch.device("cpu"))
    return root / "out", model, normalize


def torch_log_probs(model, samples, normalize):
    x = torch.from_numpy(samples)[None]
    if normalize:
        x = torch.nn.functional.layer_norm(x, x.shape[-1:])
    with torch.no_grad():
        return model(x).logits.log_softmax(-1)[0].numpy()


def test_folder_contents(exported, toy_lang):
    out, _, _ = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "H.fst",
        "HL.fst",
        "HLG.fst",
        "README.md",
        "model.int8.onnx",
        "model.onnx",
        "tokens.txt",
        "words.txt",
    ]
    readme = (out / "README.md").read_text()
    assert "from_omnilingual_asr_ctc" in readme and 'graph="HLG.fst"' in readme
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, len(inp.shape)) == ("samples", "tensor(float)", 2)
    vocab = Tokenizer(toy_lang).vocab_size
    assert (outp.name, outp.type, outp.shape[2]) == ("log_probs", "tensor(float)", vocab)
    assert (out / "tokens.txt").read_bytes() == (toy_lang / "tokens.txt").read_bytes()


def test_onnx_log_probs_equal_pytorch(exported, helpers):
    out, model, normalize = exported
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    long = np.concatenate(helpers.utterances(40, seed=1))  # ~70 s: float32 sums drift here
    for samples in [*helpers.utterances(6), long]:
        ref = torch_log_probs(model, samples, normalize)
        got = session.run(None, {"samples": samples[None]})[0][0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-4)  # the tolerance; ~3e-5 here


def word_errors(refs, hyps):
    """WER of ``hyps`` against ``refs`` (lists of word lists)."""
    errors = sum(kaldialign.edit_distance(r, h)["total"] for r, h in zip(refs, hyps, strict=True))
    return errors / max(sum(len(r) for r in refs), 1)


def test_sherpa_greedy_hlg_and_int8_decode_as_bin_decode(exported, toy_lang, helpers):
    out, model, normalize = exported
    greedy, hlg = (
        Decoder("ctc-greedy", toy_lang),
        Decoder("1best", toy_lang, "HLG", lm_scales=[1.0], backend="kaldi"),
    )
    sherpa_greedy, sherpa_hlg = SherpaCtc(out), SherpaCtc(out, graph="HLG.fst")
    sherpa_int8 = SherpaCtc(out, model="model.int8.onnx")
    ours_g, ours_h, theirs_g, theirs_h, theirs_8 = [], [], [], [], []
    for samples in helpers.utterances(20, seed=1):
        lp = torch_log_probs(model, samples, normalize)
        ours_g.append(greedy.decode(lp)["greedy"])
        ours_h.append(hlg.decode(lp)["lm_scale_1"])
        theirs_g.append(sherpa_greedy.words(samples))
        theirs_h.append(sherpa_hlg.words(samples))
        theirs_8.append(sherpa_int8.words(samples))
    same = np.mean([a == b for a, b in zip(ours_g, theirs_g, strict=True)])
    if normalize:
        # sherpa-onnx normalises its input as the model was trained: the tolerances,
        # greedy words equal on >= 99% of utterances, HLG WER within 0.2 points
        assert same >= 0.99, (same, ours_g, theirs_g)
        assert word_errors(ours_h, theirs_h) <= 0.002
    else:
        # a group-norm extractor on raw audio cancels sherpa-onnx's offset and scale only up to
        # its first norm's epsilon: this random hourglass model differs on 1 utterance of 20
        assert same >= 0.95, (same, ours_g, theirs_g)
        assert word_errors(ours_h, theirs_h) <= 0.02
    # int8 weights move this random model's flat posteriors: 9-14% of its words change
    assert word_errors(ours_g, theirs_8) <= 0.2


def test_layer_norm_extractor_without_normalisation_is_refused(tmp_path, toy_lang, helpers):
    exp = helpers.make_exp(tmp_path / "exp", toy_lang, "tiny", "layer_norm", False)
    args = ["--exp-dir", str(exp), "--format", "onnx", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as e:
        export_cli.main(args)
    assert "layer-norm feature extractor" in str(e.value) and "data.normalize: true" in str(e.value)
    assert not (tmp_path / "out" / "model.onnx").exists()
    export_cli.main([*args, "--allow-sherpa-mismatch"])
    assert (tmp_path / "out" / "model.onnx").is_file()


@pytest.mark.parametrize("mode, normalize", [("group_norm", False), ("group_norm", True)])
def test_group_norm_on_raw_audio_is_exported_with_the_caveat(
    tmp_path, toy_lang, helpers, caplog, mode, normalize
):
    exp = helpers.make_exp(tmp_path / "exp", toy_lang, "tiny", mode, normalize)
    with caplog.at_level("WARNING"):
        export_cli.main(["--exp-dir", str(exp), "--format", "onnx", "--out", str(tmp_path / "o")])
    readme = (tmp_path / "o" / "README.md").read_text()
    said = "sherpa-onnx's words can differ from bin.decode's"
    assert (said in caplog.text) is not normalize
    assert ("Note: the model was fine-tuned on raw audio" in readme) is not normalize
    assert ("check with --verify CUTS" in readme) is not normalize


def test_readme_commands_decode_as_sherpa_ctc(tmp_path, toy_lang, helpers):
    """The Python blocks and the C++ command lines of the folder's README, run as a user would
    (cwd = the folder, a WAV named audio.wav, sherpa-onnx-bin's binary on PATH), print the words
    SherpaCtc (what the equality tests use) gives."""
    import json
    import os
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    import soundfile as sf

    exp = helpers.make_exp(tmp_path / "exp", toy_lang, "tiny", "layer_norm", True)
    out = tmp_path / "out"
    export_cli.main(["--exp-dir", str(exp), "--format", "onnx", "--out", str(out)])
    readme = (out / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 2  # greedy, HLG
    (shell,) = re.findall(r"```sh\n(.*?)```", readme, re.S)
    commands = [shlex.split(line) for line in shell.splitlines()]
    assert len(commands) == 2 and all(c[0] == "sherpa-onnx-offline" for c in commands)
    # the dev extra's sherpa-onnx-bin puts the binary next to this interpreter
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    greedy, hlg = SherpaCtc(out), SherpaCtc(out, graph="HLG.fst")
    words = 0
    for samples in helpers.utterances(3, seed=4):
        sf.write(out / "audio.wav", samples, 16000, subtype="FLOAT")
        printed = [
            subprocess.run(
                [sys.executable, "-c", block], cwd=out, capture_output=True, text=True, check=True
            ).stdout.split()
            for block in blocks
        ]
        expected = [greedy.words(samples), hlg.words(samples)]
        assert printed == expected
        from_cpp = [
            json.loads(
                subprocess.run(
                    cmd, cwd=out, env=env, capture_output=True, text=True, check=True
                ).stdout
            )["text"].split()
            for cmd in commands
        ]
        assert from_cpp == expected
        words += len(printed[0]) + len(printed[1])
    assert words > 0  # not only empty transcripts
