"""Tiny CTC experiment dirs over the toy lang dir (3-gram HLG) of ``tests/lang/conftest.py``."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from random_ctc import save_random_ctc_checkpoint

_spec = importlib.util.spec_from_file_location(
    "lang_conftest", Path(__file__).parents[1] / "lang" / "conftest.py"
)
_lang_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lang_conftest)
toy_lang = _lang_conftest.toy_lang


def make_exp(
    exp: Path, lang_dir: Path, preset: str, extractor_mode: str, normalize: bool, **overrides
) -> Path:
    """An exp dir with a random CTC checkpoint whose head is peaky (argmax ties are rare) and
    never emits <sos/eos> or <unk>, as a trained one."""
    save_random_ctc_checkpoint(
        exp / "checkpoints" / "ckpt-1.pt", lang_dir, preset, normalize,
        extractor_mode=extractor_mode, **overrides,
    )
    return exp


def utterances(num: int = 20, seed: int = 0) -> list[np.ndarray]:
    """Noise bursts and pauses of 0.5 to 3 s at random levels, offsets and lengths."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num):
        n = int(rng.uniform(0.5, 3.0) * 16000)
        envelope = np.sin(np.arange(n) / 16000 * 2 * np.pi * rng.uniform(1, 3)) > -0.3
        level, offset = rng.uniform(0.02, 0.5), rng.uniform(-0.002, 0.002)
        out.append((level * rng.standard_normal(n) * envelope + offset).astype(np.float32))
    return out


@pytest.fixture(scope="session")
def helpers():
    import types

    return types.SimpleNamespace(make_exp=make_exp, utterances=utterances)
