"""Check an exported ONNX folder against the PyTorch model it came from, on a test set.

Every utterance goes through: PyTorch as ``bin.decode`` runs it (its data path, one utterance
per batch) with greedy search and 1best over ``HLG.fst`` (kaldi backend, LM scale 1, the same
beam and max-active as sherpa-onnx); ``model.onnx`` and ``model.int8.onnx`` in onnxruntime with
the same two searches; sherpa-onnx greedy and over ``HLG.fst`` with either model (sherpa-onnx
normalises its input first, see :mod:`hourglass_w2v2.export.onnx`). :func:`verify_export`
returns the largest log-prob difference between onnxruntime fp32 and PyTorch, the share of
utterances whose sherpa-onnx greedy words equal PyTorch's, and each runtime's WER against the
references; :func:`check` grades them against :data:`TOLERANCES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet
from tqdm import tqdm

from hourglass_w2v2.decoding.methods import Decoder
from hourglass_w2v2.decoding.runner import Timing, iter_log_probs
from hourglass_w2v2.decoding.search import SearchOptions
from hourglass_w2v2.export.sherpa import SherpaCtc
from hourglass_w2v2.models import SAMPLE_RATE
from hourglass_w2v2.scoring import word_error_rate

# What an export must keep: onnxruntime's fp32 log-probs within 1e-4 of PyTorch's, sherpa-onnx
# greedy giving our greedy words on >= 99% of utterances, its HLG WER within 0.2 (absolute) of
# ours, the int8 model's WERs (onnxruntime, our searches) at most 1.0 above PyTorch's (the cost
# of quantisation; int8 coming out better is no fault).
TOLERANCES = {"log_prob": 1e-4, "greedy_agreement": 0.99, "hlg_wer": 0.2, "int8_wer": 1.0}


@dataclass
class Report:
    """What :func:`verify_export` measured; WERs in %."""

    utterances: int = 0
    max_log_prob_diff: float = 0.0
    greedy_agreement: float = 0.0
    wer: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        """The WERs and the agreement figures as a markdown table."""
        lines = [
            f"{self.utterances} utterances; max |log-prob ONNX - PyTorch| = "
            f"{self.max_log_prob_diff:.2e}; sherpa-onnx greedy = PyTorch greedy on "
            f"{100 * self.greedy_agreement:.1f}% of utterances",
            "",
            "| runtime | search | WER (%) |",
            "|---|---|---:|",
        ]
        for key, value in self.wer.items():
            runtime, search = key.split(" / ")
            lines.append(f"| {runtime} | {search} | {value:.2f} |")
        return "\n".join(lines)


def check(report: Report, tolerances: dict[str, float] = TOLERANCES) -> list[str]:
    """The tolerances ``report`` misses, one line each (empty: the export is faithful)."""
    w, t = report.wer, tolerances
    problems = []
    if report.max_log_prob_diff > t["log_prob"]:
        problems.append(f"log-probs differ by {report.max_log_prob_diff:.2e} > {t['log_prob']}")
    if report.greedy_agreement < t["greedy_agreement"]:
        problems.append(
            f"sherpa-onnx greedy agrees on {100 * report.greedy_agreement:.1f}% of utterances "
            f"< {100 * t['greedy_agreement']:.0f}%"
        )
    key, ref = "sherpa-onnx fp32 / HLG", "PyTorch / HLG"
    if key in w and abs(w[key] - w[ref]) > t["hlg_wer"]:
        problems.append(f"{key} WER {w[key]:.2f}, {ref} {w[ref]:.2f}: over {t['hlg_wer']} apart")
    for search in ("greedy", "HLG"):
        key, ref = f"onnxruntime int8 / {search}", f"PyTorch / {search}"
        if key in w and w[key] - w[ref] > t["int8_wer"]:
            problems.append(
                f"{key} WER {w[key]:.2f}, {ref} {w[ref]:.2f}: over {t['int8_wer']} above"
            )
    return problems


def verify_export(
    model: torch.nn.Module,
    normalize: bool,
    folder: str | Path,
    lang_dir: str | Path,
    cuts: CutSet,
    max_active: int = 1000,
    num_threads: int = 1,
) -> Report:
    """Decode ``cuts`` with PyTorch and with the exported ``folder``; see the module doc."""
    import onnxruntime as ort

    folder = Path(folder)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = num_threads, 1
    greedy = Decoder("ctc-greedy", lang_dir)
    hlg = Decoder(
        "1best", lang_dir, "HLG", SearchOptions(max_active=max_active), [1.0], backend="kaldi"
    )
    models = {"fp32": "model.onnx"}
    if (folder / "model.int8.onnx").is_file():
        models["int8"] = "model.int8.onnx"
    sessions = {
        precision: ort.InferenceSession(
            str(folder / name), opts, providers=["CPUExecutionProvider"]
        )
        for precision, name in models.items()
    }
    sherpa = {
        (precision, search): SherpaCtc(folder, name, graph, max_active, num_threads)
        for precision, name in models.items()
        for search, graph in (("greedy", None), ("HLG", "HLG.fst"))
    }
    by_id = {c.id: c for c in cuts}
    hyps: dict[str, list[tuple[list[str], list[str]]]] = {}
    report = Report()
    agree = 0
    # max_duration 0: one utterance per batch, no padding, as the ONNX graph takes it
    torch_out = iter_log_probs(model, cuts, 0.0, normalize, torch.device("cpu"), Timing())
    for cut_id, text, log_probs in tqdm(torch_out, total=len(by_id), desc="verify", unit="utt"):
        cut = by_id[cut_id]
        if cut.sampling_rate != SAMPLE_RATE:
            cut = cut.resample(SAMPLE_RATE)
        samples = np.ascontiguousarray(cut.load_audio().mean(axis=0), dtype=np.float32)
        ref = text.split()
        ours = greedy.decode(log_probs)["greedy"]
        hyps.setdefault("PyTorch / greedy", []).append((ref, ours))
        hyps.setdefault("PyTorch / HLG", []).append((ref, hlg.decode(log_probs)["lm_scale_1"]))
        for precision, sess in sessions.items():
            lp = sess.run(None, {"samples": samples[None]})[0][0]
            if lp.shape != log_probs.shape:
                raise ValueError(f"cut {cut_id}: ONNX gives {lp.shape}, PyTorch {log_probs.shape}")
            if precision == "fp32":
                diff = float(np.abs(lp - log_probs).max())
                report.max_log_prob_diff = max(report.max_log_prob_diff, diff)
            key = f"onnxruntime {precision}"
            hyps.setdefault(f"{key} / greedy", []).append((ref, greedy.decode(lp)["greedy"]))
            hyps.setdefault(f"{key} / HLG", []).append((ref, hlg.decode(lp)["lm_scale_1"]))
        for (precision, search), recognizer in sherpa.items():
            words = recognizer.words(samples)
            hyps.setdefault(f"sherpa-onnx {precision} / {search}", []).append((ref, words))
            if (precision, search) == ("fp32", "greedy"):
                agree += words == ours
        report.utterances += 1
    if not report.utterances:
        raise ValueError("no utterances to verify with")
    report.greedy_agreement = agree / report.utterances
    report.wer = {
        key: word_error_rate([r for r, _ in pairs], [h for _, h in pairs])
        for key, pairs in hyps.items()
    }
    return report
