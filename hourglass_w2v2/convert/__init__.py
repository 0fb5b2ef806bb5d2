"""Weight converters between our wav2vec 2.0 models and fairseq, NVIDIA DeepLearningExamples,
torchaudio and HF transformers."""

from pathlib import Path
from typing import Any

from hourglass_w2v2.convert.fairseq import (
    config_from_fairseq,
    fairseq_state_to_ours,
    load_fairseq_checkpoint,
    model_from_fairseq,
    ours_to_fairseq_state,
    to_fairseq,
)
from hourglass_w2v2.convert.nvidia import (
    from_nvidia,
    is_nvidia_checkpoint,
    load_nvidia_checkpoint,
    nvidia_state_to_ours,
    ours_to_nvidia_state,
    to_nvidia,
)
from hourglass_w2v2.convert.references import from_huggingface, from_torchaudio
from hourglass_w2v2.models import Wav2Vec2Ctc, Wav2Vec2Pretrain

__all__ = [
    "config_from_fairseq",
    "fairseq_state_to_ours",
    "from_fairseq",
    "from_huggingface",
    "from_nvidia",
    "from_torchaudio",
    "is_nvidia_checkpoint",
    "load_fairseq_checkpoint",
    "load_nvidia_checkpoint",
    "model_from_fairseq",
    "nvidia_state_to_ours",
    "ours_to_fairseq_state",
    "ours_to_nvidia_state",
    "to_fairseq",
    "to_nvidia",
]


def from_fairseq(checkpoint: dict[str, Any] | str | Path) -> Wav2Vec2Pretrain | Wav2Vec2Ctc:
    """Our model from a fairseq or NVIDIA DeepLearningExamples wav2vec 2.0 checkpoint.

    Accepts the checkpoint dict or its path. An NVIDIA checkpoint (``args`` holding ``mode``)
    goes to :func:`hourglass_w2v2.convert.nvidia.from_nvidia`, any other to
    :func:`hourglass_w2v2.convert.fairseq.model_from_fairseq`: a fine-tuned one gives a
    :class:`Wav2Vec2Ctc`, a pretraining one a :class:`Wav2Vec2Pretrain`.
    """
    ckpt = load_fairseq_checkpoint(checkpoint)
    return from_nvidia(ckpt) if is_nvidia_checkpoint(ckpt) else model_from_fairseq(ckpt)
