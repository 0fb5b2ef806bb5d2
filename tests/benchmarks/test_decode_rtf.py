"""benchmarks/decode_rtf.py: bin.decode's batching on torch alone, with a row per model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decode_rtf.py"


def test_needs_torch_only():
    # the GPU machine has torch, torchaudio and transformers, not lhotse, k2-fsa's or onnx
    code = (
        f"import runpy, sys; runpy.run_path({str(SCRIPT)!r}, run_name='x'); "
        "print(sorted(m for m in ('lhotse', 'kaldifst', 'kaldi_decoder', 'onnxruntime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_batches_as_bin_decode_and_prints_a_row_per_model():
    sys.path.insert(0, str(SCRIPT.parent))
    import decode_rtf

    from hourglass_w2v2.models import ModelConfig, build_model

    utts = decode_rtf.utterances(7)
    assert all(1.3 <= u.duration <= 35.0 for u in utts)
    batches = decode_rtf.make_batches(utts, 12.0)
    assert sorted(u.id for b in batches for u in b) == list(range(7))
    assert all(b[0].duration * len(b) <= 12.0 for b in batches if len(b) > 1)
    # batched greedy output equals one utterance at a time (padding does not leak)
    torch.manual_seed(0)
    model = build_model(ModelConfig.preset("tiny"), "ctc", decode_rtf.VOCAB).eval()
    with torch.no_grad():
        model.ctc_head.weight.mul_(4.0)
    cpu = torch.device("cpu")
    for batch in batches:
        _, _, hyps = decode_rtf.decode(model, batch, cpu, torch.float32)
        for u, hyp in zip(batch, hyps, strict=True):
            assert decode_rtf.decode(model, [u], cpu, torch.float32)[2] == [hyp]

    args = ["--models", "tiny", "tiny-hourglass", "--num-utts", "4", "--threads", "1"]
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    row = r"^\| (tiny\S*) \| 3\.8 \| [\d.]+ \| [\d.]+ \| ([\d.]+) \| - \|$"
    rows = re.findall(row, out.stdout, re.M)
    assert [r[0] for r in rows] == ["tiny", "tiny-hourglass"]
    assert all(float(r[1]) > 0 for r in rows)
    assert re.search(r"^tiny-hourglass vs tiny: [\d.]+x the speed$", out.stdout, re.M)
