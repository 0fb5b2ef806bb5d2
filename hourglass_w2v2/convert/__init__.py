"""Weight converters between our wav2vec 2.0 models and fairseq, torchaudio and HF transformers."""

from hourglass_w2v2.convert.fairseq import (
    config_from_fairseq,
    fairseq_state_to_ours,
    from_fairseq,
    ours_to_fairseq_state,
    to_fairseq,
)
from hourglass_w2v2.convert.references import from_huggingface, from_torchaudio

__all__ = [
    "config_from_fairseq",
    "fairseq_state_to_ours",
    "from_fairseq",
    "from_huggingface",
    "from_torchaudio",
    "ours_to_fairseq_state",
    "to_fairseq",
]
