"""Decode with sherpa-onnx from an exported folder (:mod:`hourglass_w2v2.export.onnx`).

The Omnilingual-ASR CTC model type of sherpa-onnx takes raw 16 kHz samples; with ``graph`` it
searches that FST (``OfflineCtcFstDecoderConfig``: kaldi-decoder's ``FasterDecoder``, default
beam 16, the ``max_active`` given here), else it takes the greedy path. Used by the equality
tests and ``benchmarks/inference_speed.py``; sherpa-onnx is imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hourglass_w2v2.lang.tokenizer import read_token_table
from hourglass_w2v2.models import SAMPLE_RATE


class SherpaCtc:
    """A sherpa-onnx recognizer over an exported folder; :meth:`words` decodes one utterance."""

    def __init__(
        self,
        folder: str | Path,
        model: str = "model.onnx",
        graph: str | None = None,
        max_active: int = 1000,
        num_threads: int = 1,
    ) -> None:
        from sherpa_onnx.lib._sherpa_onnx import (
            OfflineCtcFstDecoderConfig,
            OfflineModelConfig,
            OfflineOmnilingualAsrCtcModelConfig,
            OfflineRecognizer,
            OfflineRecognizerConfig,
        )

        folder = Path(folder)
        for name in (model, "tokens.txt", graph):
            if name and not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} does not exist (run bin.export first)")
        config = OfflineRecognizerConfig(
            model_config=OfflineModelConfig(
                omnilingual=OfflineOmnilingualAsrCtcModelConfig(model=str(folder / model)),
                tokens=str(folder / "tokens.txt"),
                num_threads=num_threads,
            ),
            decoding_method="greedy_search",
            ctc_fst_decoder_config=OfflineCtcFstDecoderConfig(
                graph=str(folder / graph) if graph else "", max_active=max_active
            ),
        )
        self.recognizer = OfflineRecognizer(config)
        self.words_of: dict[int, str] = {}
        if graph and graph != "H.fst":
            table = read_token_table(folder / "words.txt")
            self.words_of = {i: w for w, i in table.items()}

    def words(self, samples: np.ndarray) -> list[str]:
        """Words of one utterance of 16 kHz float32 samples (word ids mapped through words.txt
        for HL/HLG, the spelled-out units otherwise)."""
        stream = self.recognizer.create_stream()
        stream.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(samples, dtype=np.float32))
        self.recognizer.decode_stream(stream)
        if self.words_of:
            return [self.words_of[int(i)] for i in stream.result.words]
        return stream.result.text.split()
