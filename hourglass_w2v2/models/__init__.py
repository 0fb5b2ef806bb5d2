"""wav2vec 2.0 with an optional Hourglass Transformer encoder: configs, modules and factory."""

from hourglass_w2v2.models.config import PRESETS, SAMPLE_RATE, ModelConfig
from hourglass_w2v2.models.wav2vec2 import (
    CtcOutput,
    PretrainOutput,
    Wav2Vec2Backbone,
    Wav2Vec2Ctc,
    Wav2Vec2Pretrain,
    build_model,
)

__all__ = [
    "PRESETS",
    "SAMPLE_RATE",
    "CtcOutput",
    "ModelConfig",
    "PretrainOutput",
    "Wav2Vec2Backbone",
    "Wav2Vec2Ctc",
    "Wav2Vec2Pretrain",
    "build_model",
]
