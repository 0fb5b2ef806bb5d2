"""A random CTC checkpoint shaped like a fine-tuned one, for export and transcription tests."""

from pathlib import Path

import torch

from hourglass_w2v2.lang.tokenizer import Tokenizer
from hourglass_w2v2.models import ModelConfig, build_model


def save_random_ctc_checkpoint(
    path: Path, lang_dir: Path, preset: str = "tiny", normalize: bool = False, **overrides
) -> Path:
    """Write a random ``preset`` CTC checkpoint over ``lang_dir`` to ``path``.

    Its head is made peaky (argmax ties are rare) and never emits ``<sos/eos>`` or ``<unk>``,
    as a trained one; ``normalize`` is recorded as the ``data.normalize`` it was trained with.
    """
    tok = Tokenizer(lang_dir)
    torch.manual_seed(0)
    cfg = ModelConfig.preset(preset, **overrides)
    model = build_model(cfg, task="ctc", vocab_size=tok.vocab_size)
    with torch.no_grad():
        model.ctc_head.weight.mul_(4.0)
        model.ctc_head.bias[1:3] = -30.0
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": cfg.to_dict(),
            "task": "ctc",
            "vocab_size": tok.vocab_size,
            "lang_dir": str(lang_dir),
            "tokens": list(tok.id2token),
            "update": 1,
            "config": {"data": {"normalize": normalize}},
        },
        path,
    )
    return path
