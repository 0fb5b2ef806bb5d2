"""Weight converters between our wav2vec 2.0 models and fairseq, NVIDIA DeepLearningExamples,
torchaudio and HF transformers."""

from hourglass_w2v2.convert.fairseq import (
    config_from_fairseq,
    fairseq_state_to_ours,
    from_fairseq,
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

__all__ = [
    "config_from_fairseq",
    "fairseq_state_to_ours",
    "from_fairseq",
    "from_huggingface",
    "from_nvidia",
    "from_torchaudio",
    "is_nvidia_checkpoint",
    "load_nvidia_checkpoint",
    "nvidia_state_to_ours",
    "ours_to_fairseq_state",
    "ours_to_nvidia_state",
    "to_fairseq",
    "to_nvidia",
]
