"""Export a fine-tuned CTC model to ONNX: a self-contained folder for onnxruntime and sherpa-onnx.

``model.onnx`` has one input, ``samples``: float32 ``(N, num_samples)`` raw 16 kHz audio, and
one output, ``log_probs``: float32 ``(N, T, V)``, one frame per 20 ms. When the model was
fine-tuned with ``data.normalize: true`` the graph normalises its input itself (zero mean, unit
variance over the samples of each row), so the file always takes raw samples; rows of a batch
are therefore whole utterances of equal length (there is no padding input). This is the input
and output sherpa-onnx's Omnilingual-ASR CTC model type expects; ``tokens.txt`` (``symbol id``,
blank 0) and the lang dir's ``H.fst``/``HL.fst``/``HLG.fst`` (input label = unit id + 1) are
copied next to it as they are, since both already follow sherpa-onnx's conventions.

sherpa-onnx normalises every utterance to zero mean and unit variance before the model and
cannot be told not to. That changes nothing for a model trained with normalisation (the graph's
own normalisation of an already normalised signal is the identity up to its epsilon). A
group-norm extractor trained on raw audio has a first convolution without bias followed by a
per-channel normalisation over time, so a per-utterance offset and scale cancel, but only up to
that norm's epsilon, which matters for channels of small variance: the words can change
(:func:`sherpa_caveat` says so at export). A layer-norm extractor trained without normalisation
is not invariant to them at all: :func:`sherpa_compatibility` refuses it unless asked to export
anyway.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import torch
from torch import Tensor, nn

from hourglass_w2v2.export import ExportError
from hourglass_w2v2.fileio import atomic_output, atomic_write_text
from hourglass_w2v2.models.config import SAMPLE_RATE, ModelConfig
from hourglass_w2v2.models.wav2vec2 import Wav2Vec2Ctc

OPSET = 17
GRAPHS = ("H.fst", "HL.fst", "HLG.fst")


class RawAudioCtc(nn.Module):
    """Raw samples ``(N, S)`` -> CTC log-probs ``(N, T, V)``: the graph that is exported.

    The same computation as :meth:`Wav2Vec2Ctc.forward` in eval mode on an unpadded batch, with
    the optional input normalisation in front.
    """

    def __init__(self, model: Wav2Vec2Ctc, normalize: bool) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        # the FFT form of the position conv uses Python arithmetic on the length: not traceable
        self.model.encoder.pos_conv.impl = "conv"
        # onnxruntime's fp32 sums over a long utterance's frames are less exact than torch's
        for block in self.model.feature_extractor.conv_layers:
            block.blocked_stats = True
        self.normalize = normalize

    def forward(self, samples: Tensor) -> Tensor:
        """samples (N, S) float32 -> log_probs (N, T, V) float32."""
        m = self.model
        if self.normalize:
            # data.normalize's layer_norm over the samples, in ops whose length may vary; in
            # float64, since onnxruntime's float32 mean over a long row is off by ~1e-6
            x = samples.double()
            mean = x.mean(dim=-1, keepdim=True)
            var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
            samples = ((x - mean) * torch.rsqrt(var + 1e-5)).to(samples.dtype)
        feats, _ = m.feature_extractor(samples, None)
        x = m.encoder(m.feature_proj(m.feature_norm(feats)), None)
        return m.ctc_head(x).log_softmax(dim=-1)


def export_onnx(
    model: Wav2Vec2Ctc, path: str | Path, normalize: bool, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model`` as ``path`` (fp32 ONNX, dynamic batch and length; see the module doc).

    ``metadata`` goes into the file's metadata properties (sherpa-onnx prints them with
    ``debug=True``). The file is written to a temporary name and renamed.
    """
    import onnx

    wrapper = RawAudioCtc(model, normalize).eval()
    example = torch.zeros(1, SAMPLE_RATE)
    path = Path(path)
    with atomic_output(path, keep_suffix=True) as tmp:
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=["samples"],
            output_names=["log_probs"],
            dynamic_axes={"samples": {0: "N", 1: "num_samples"}, "log_probs": {0: "N", 1: "T"}},
            opset_version=OPSET,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, str(value)
        onnx.save(proto, str(tmp))
    return path


def quantize_int8(src: str | Path, dst: str | Path) -> Path:
    """onnxruntime's dynamic quantisation of ``src``: int8 weights of the matrix products, one
    scale per output column (activations quantised on the fly), written as ``dst``.

    Convolutions stay float32: onnxruntime's ConvInteger is slower than its float Conv.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    with atomic_output(dst, keep_suffix=True) as tmp:
        quantize_dynamic(
            str(src),
            str(tmp),
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    return dst


def sherpa_compatibility(cfg: ModelConfig, normalize: bool) -> str | None:
    """Why sherpa-onnx would not reproduce this model, or None when it does.

    sherpa-onnx normalises each utterance before the model (see the module doc); only a
    layer-norm extractor fine-tuned on unnormalised audio depends on the offset and scale
    that normalisation removes.
    """
    if cfg.extractor_mode == "layer_norm" and not normalize:
        return (
            "the model has a layer-norm feature extractor and was fine-tuned without input "
            "normalisation (data.normalize: false), but sherpa-onnx normalises every utterance "
            "to zero mean and unit variance before the model, which changes this model's "
            "output; fine-tune with data.normalize: true, or pass --allow-sherpa-mismatch to "
            "export for onnxruntime anyway"
        )
    return None


def sherpa_caveat(cfg: ModelConfig, normalize: bool) -> str | None:
    """What sherpa-onnx may change for a model it runs (None when nothing): a group-norm
    extractor trained on raw audio cancels the input level only up to its norm's epsilon, so
    the level sherpa-onnx's normalisation sets can change its words."""
    if cfg.extractor_mode == "group_norm" and not normalize:
        return (
            "the model was fine-tuned on raw audio (data.normalize: false); sherpa-onnx "
            "normalises every utterance first, which its group-norm extractor cancels only up to "
            "the norm's epsilon, so sherpa-onnx's words can differ from bin.decode's (onnxruntime "
            "with model.onnx gives ours); check with --verify CUTS, or fine-tune with "
            "data.normalize: true for an exact match"
        )
    return None


def copy_lang_files(lang_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Copy ``tokens.txt``, ``words.txt`` and whichever of ``H``/``HL``/``HLG.fst`` the lang
    dir has into ``out_dir``; return the copies. A lang dir without tokens.txt is an error."""
    lang_dir, out_dir = Path(lang_dir), Path(out_dir)
    if not (lang_dir / "tokens.txt").is_file():
        raise ExportError(f"{lang_dir / 'tokens.txt'} is missing (run prepare.sh stage 4)")
    copied = []
    for name in ("tokens.txt", "words.txt", *GRAPHS):
        if (lang_dir / name).is_file():
            with atomic_output(out_dir / name) as tmp:
                shutil.copyfile(lang_dir / name, tmp)
            copied.append(out_dir / name)
    if not any(p.name in GRAPHS for p in copied):
        logging.warning("%s has no H/HL/HLG.fst: the export supports greedy search only", lang_dir)
    return copied


# The lines of both README examples that read one file and print its transcript.
_DECODE_ONE_FILE = [
    'samples, rate = sf.read("audio.wav", dtype="float32")',
    "stream = recognizer.create_stream()",
    "stream.accept_waveform(rate, samples)",
    "recognizer.decode_stream(stream)",
    "print(stream.result.text)",
]


def readme_text(
    exp_dir: str | Path,
    files: list[str],
    normalize: bool,
    graph: str | None,
    caveat: str | None = None,
) -> str:
    """The folder's README: what each file is, the exact sherpa-onnx calls that decode, and
    ``caveat`` (what sherpa-onnx changes for this model) when there is one."""
    model = "model.int8.onnx" if "model.int8.onnx" in files else "model.onnx"
    fst_config = f'graph="{graph}", max_active=1000' if graph else 'graph=""'
    lines = [
        f"# CTC model exported from {Path(exp_dir).name}",
        "",
        "- `model.onnx`: input `samples` float32 (N, num_samples) raw 16 kHz audio, output "
        "`log_probs` float32 (N, T, V), one frame per 20 ms"
        + (" (the graph normalises its input itself)" if normalize else ""),
    ]
    if "model.int8.onnx" in files:
        lines.append(
            "- `model.int8.onnx`: the same with int8 weights (onnxruntime dynamic quantization)"
        )
    lines += [
        "- `tokens.txt`: `symbol id` per line, CTC blank = 0",
        "- `H.fst` / `HL.fst` / `HLG.fst` (those present): decoding graphs, input label = "
        "token id + 1, output labels = ids of `words.txt`",
        "",
        "## sherpa-onnx (pip install sherpa-onnx)",
        "",
        *([f"Note: {caveat}.", ""] if caveat else []),
        "Greedy search:",
        "",
        "```python",
        "import sherpa_onnx, soundfile as sf",
        "",
        "recognizer = sherpa_onnx.OfflineRecognizer.from_omnilingual_asr_ctc(",
        f'    model="{model}", tokens="tokens.txt", num_threads=2',
        ")",
        *_DECODE_ONE_FILE,
        "```",
        "",
    ]
    if graph:
        lines += [
            f"Search of `{graph}` (FST decoding, as `bin.decode --method 1best` at LM scale 1):",
            "",
            "```python",
            "import soundfile as sf",
            "from sherpa_onnx.lib._sherpa_onnx import (",
            "    OfflineCtcFstDecoderConfig, OfflineModelConfig,",
            "    OfflineOmnilingualAsrCtcModelConfig, OfflineRecognizer, OfflineRecognizerConfig,",
            ")",
            "",
            "config = OfflineRecognizerConfig(",
            "    model_config=OfflineModelConfig(",
            f'        omnilingual=OfflineOmnilingualAsrCtcModelConfig(model="{model}"),',
            '        tokens="tokens.txt", num_threads=2,',
            "    ),",
            f"    ctc_fst_decoder_config=OfflineCtcFstDecoderConfig({fst_config}),",
            ")",
            "recognizer = OfflineRecognizer(config)",
            *_DECODE_ONE_FILE,
            "```",
            "",
        ]
    cpp = f"sherpa-onnx-offline --omnilingual-asr-model={model} --tokens=tokens.txt --num-threads=2"
    lines += [
        "## sherpa-onnx's C++ binary (pip install sherpa-onnx-bin, or a sherpa-onnx build)",
        "",
        "It prints one JSON line per file (`text`, token `timestamps`). Greedy search"
        + (f", then the search of `{graph}`:" if graph else ":"),
        "",
        "```sh",
        f"{cpp} audio.wav",
        *([f"{cpp} --ctc.graph={graph} --ctc.max-active=1000 audio.wav"] if graph else []),
        "```",
        "",
    ]
    return "\n".join(lines)


def export_onnx_folder(
    model: Wav2Vec2Ctc,
    normalize: bool,
    lang_dir: str | Path,
    out_dir: str | Path,
    exp_dir: str | Path,
    int8: bool = False,
    allow_sherpa_mismatch: bool = False,
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Write the sherpa-onnx folder (model.onnx, optional model.int8.onnx, tokens.txt, graphs,
    README.md) for ``model``; return the files written.

    Refuses, with :class:`ExportError`, a model sherpa-onnx would not reproduce
    (:func:`sherpa_compatibility`) unless ``allow_sherpa_mismatch``.
    """
    problem = sherpa_compatibility(model.cfg, normalize)
    if problem and not allow_sherpa_mismatch:
        raise ExportError(f"{exp_dir}: {problem}")
    if problem:
        logging.warning("%s: exporting anyway: %s", exp_dir, problem)
    caveat = sherpa_caveat(model.cfg, normalize)
    if caveat:
        logging.warning("%s: %s", exp_dir, caveat)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "model_type": "hourglass_w2v2_ctc",
        "vocab_size": str(model.ctc_head.out_features),
        "normalize_in_graph": str(int(normalize)),
        "frame_shift_ms": "20",
        **(metadata or {}),
    }
    written = [export_onnx(model, out_dir / "model.onnx", normalize, meta)]
    if int8:
        written.append(quantize_int8(out_dir / "model.onnx", out_dir / "model.int8.onnx"))
    written += copy_lang_files(lang_dir, out_dir)
    names = [p.name for p in written]
    graph = next((g for g in reversed(GRAPHS) if g in names), None)
    readme = out_dir / "README.md"
    atomic_write_text(readme, readme_text(exp_dir, names, normalize, graph, caveat or problem))
    return [*written, readme]
