"""Real-time factor of one CTC model through every runtime, on the same files, in one run.

    python benchmarks/inference_speed.py --exp-dir exp/NAME [--lang-dir data/lang_char]
    python benchmarks/inference_speed.py --exp-dir exp/NAME \
        --cuts data/manifests/synth_cuts_test-clean.jsonl.gz
    python benchmarks/inference_speed.py --preset tiny --lang-dir data/lang_char   # random weights

Exports the model (``bin.export --format onnx --int8``) to a temporary folder, then decodes
``--num-files`` generated utterances of ``--seconds`` each (or the first ``--num-files`` cuts of
``--cuts``, whole, with a WER against their transcripts too) with: PyTorch fp32 + greedy, ONNX
fp32 and ONNX int8 in onnxruntime + greedy, sherpa-onnx greedy, and sherpa-onnx searching
``HLG.fst``. Every runtime gets ``--threads`` threads. Prints seconds, RTF (seconds of compute
per second of audio) and speed-up over PyTorch, and the word error rate of each runtime's words
against PyTorch's greedy words (for HLG: against ``bin.decode``'s 1best over HLG at LM scale 1).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from lhotse import CutSet

from hourglass_w2v2.checkpoint import load_ctc_model, resolve_checkpoint
from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.export.onnx import export_onnx_folder
from hourglass_w2v2.export.sherpa import SherpaCtc
from hourglass_w2v2.lang.tokenizer import Tokenizer
from hourglass_w2v2.models import ModelConfig, build_model
from hourglass_w2v2.scoring import word_error_rate


def utterances(num: int, seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Noise bursts and pauses (a model emits varied units on them; speed needs no speech)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    out = []
    for _ in range(num):
        envelope = np.sin(np.arange(n) / 16000 * 2 * np.pi * rng.uniform(1, 3)) > -0.3
        out.append((rng.uniform(0.05, 0.3) * rng.standard_normal(n) * envelope).astype(np.float32))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exp-dir", type=Path, default=None)
    p.add_argument("--preset", default="tiny", help="random-weight model when no --exp-dir")
    p.add_argument("--lang-dir", type=Path, default=None, help="default: the checkpoint's")
    p.add_argument("--num-files", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cuts", type=Path, default=None, help="a cut set to take utterances from")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    if args.exp_dir is not None:
        ckpt = torch.load(resolve_checkpoint(args.exp_dir), map_location="cpu", weights_only=False)
        lang_dir = args.lang_dir or Path(ckpt["lang_dir"])
        tok = Tokenizer(lang_dir)
        model, ckpt = load_ctc_model(resolve_checkpoint(args.exp_dir), tok, torch.device("cpu"))
        normalize = bool(((ckpt.get("config") or {}).get("data") or {}).get("normalize", False))
        name = str(args.exp_dir)
    else:
        if args.lang_dir is None:
            p.error("--lang-dir is needed with --preset")
        lang_dir, tok = args.lang_dir, Tokenizer(args.lang_dir)
        torch.manual_seed(0)
        model = build_model(ModelConfig.preset(args.preset), "ctc", tok.vocab_size).eval()
        with torch.no_grad():  # as a trained head: peaky, never <sos/eos> or <unk>
            model.ctc_head.weight.mul_(4.0)
            model.ctc_head.bias[1:3] = -30.0
        normalize, name = False, f"{args.preset} (random weights)"
    refs = None
    if args.cuts is not None:
        cuts = list(CutSet.from_file(args.cuts))[: args.num_files]
        files = [np.ascontiguousarray(c.load_audio().mean(axis=0), np.float32) for c in cuts]
        refs = [c.supervisions[0].text.split() for c in cuts]
        audio_seconds = sum(c.duration for c in cuts)
        what = f"{len(cuts)} cuts of {args.cuts.name} ({audio_seconds:.0f} s)"
    else:
        files = utterances(args.num_files, args.seconds)
        audio_seconds = args.num_files * args.seconds
        what = f"{args.num_files} files x {args.seconds:g} s"
    greedy = Decoder("ctc-greedy", lang_dir)
    hlg = Decoder("1best", lang_dir, "HLG", lm_scales=[1.0], backend="kaldi")

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx_folder(model, normalize, lang_dir, tmp, name, int8=True)
        rows: list[tuple[str, float, float, float | None]] = []

        def timed(label, decode, ref):
            decode(files[0])  # warm-up: first-call allocations and graph optimisation
            start = time.perf_counter()
            words = [decode(x) for x in files]
            seconds = time.perf_counter() - start
            agreement = word_error_rate(ref, words) if ref is not None else 0.0
            rows.append((label, seconds, agreement, word_error_rate(refs, words) if refs else None))
            return words

        def torch_lp(x):
            t = torch.from_numpy(x)[None]
            if normalize:
                t = torch.nn.functional.layer_norm(t, t.shape[-1:])
            with torch.inference_mode():
                return model(t).logits.log_softmax(-1)[0].numpy()

        ours = timed("PyTorch fp32, greedy", lambda x: greedy.decode(torch_lp(x))["greedy"], None)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        for label, fname in (("ONNX fp32", "model.onnx"), ("ONNX int8", "model.int8.onnx")):
            sess = ort.InferenceSession(
                str(Path(tmp) / fname), opts, providers=["CPUExecutionProvider"]
            )

            def run(x, sess=sess):
                return greedy.decode(sess.run(None, {"samples": x[None]})[0][0])["greedy"]

            timed(f"{label} (onnxruntime), greedy", run, ours)
        sherpa = SherpaCtc(tmp, num_threads=args.threads)
        timed("sherpa-onnx fp32, greedy", sherpa.words, ours)
        sherpa_hlg = SherpaCtc(tmp, graph="HLG.fst", num_threads=args.threads)
        ours_hlg = [hlg.decode(torch_lp(x))["lm_scale_1"] for x in files]
        timed("sherpa-onnx fp32, HLG (beam 16, max-active 1000)", sherpa_hlg.words, ours_hlg)

    base = rows[0][1]
    print(
        f"model {name}, {what}, {args.threads} threads, "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}"
    )
    extra = " WER vs transcripts (%) |" if refs else ""
    print(f"| runtime | seconds | RTF | speed-up vs PyTorch | WER vs PyTorch (%) |{extra}")
    print("|---|---|---|---|---|" + ("---|" if refs else ""))
    for label, seconds, err, true_wer in rows:
        print(
            f"| {label} | {seconds:.2f} | {seconds / audio_seconds:.4f} | "
            f"{base / seconds:.2f}x | {err:.1f} |" + (f" {true_wer:.2f} |" if refs else "")
        )


if __name__ == "__main__":
    main()
