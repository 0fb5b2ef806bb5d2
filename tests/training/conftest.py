"""Tiny generated corpora for the training tests: tone sequences that spell their transcript.

Each letter is a 60 ms tone at its own frequency (plus noise), so the audio has learnable
structure for both the contrastive task and CTC, and a cut set of a few seconds is enough.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import soundfile as sf
import yaml
from lhotse import CutSet, Recording, SupervisionSegment

SR = 16000
WORDS = ["AB", "BAD", "CAB", "DEAD", "BEE", "ACE", "FED", "FACE"]
FREQS = {c: 300.0 + 180.0 * i for i, c in enumerate("ABCDEF")}


def make_cuts(root: Path, name: str, num: int, seed: int, words: tuple[int, int] = (2, 4)) -> Path:
    """Write ``num`` utterances under ``root/name`` and their cut set; return its path."""
    rng = np.random.default_rng(seed)
    audio_dir = root / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    cuts = []
    for i in range(num):
        text = " ".join(rng.choice(WORDS, size=rng.integers(*words, endpoint=True)))
        pieces = [np.zeros(int(0.05 * SR))]
        for ch in text:
            n = int(0.06 * SR)
            if ch == " ":
                pieces.append(np.zeros(n))
                continue
            t = np.arange(n) / SR
            pieces.append(0.5 * np.sin(2 * np.pi * FREQS[ch] * t + rng.uniform(0, 6.28)))
        pieces.append(np.zeros(int(0.05 * SR)))
        audio = np.concatenate(pieces)
        audio = (audio + 0.05 * rng.standard_normal(audio.size)).astype(np.float32)
        path = audio_dir / f"{name}-{i:03d}.flac"
        sf.write(path, audio, SR)
        rec = Recording.from_file(path, recording_id=f"{name}-{i:03d}")
        sup = SupervisionSegment(
            id=rec.id,
            recording_id=rec.id,
            start=0.0,
            duration=rec.duration,
            text=text,
            speaker="spk",
        )
        cut = rec.to_cut()
        cut.supervisions = [sup]
        cuts.append(cut)
    out = root / f"{name}.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(out)
    return out


def make_char_lang(lang_dir: Path) -> Path:
    """A ``lang_char`` dir (char sentencepiece model + tokens.txt) over the test letters."""
    lang_dir.mkdir(parents=True, exist_ok=True)
    text = lang_dir / "text.txt"
    text.write_text("\n".join(WORDS * 20) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(lang_dir / "char"),
        model_type="char",
        vocab_size=3 + 1 + len(FREQS),
        user_defined_symbols=["<blk>", "<sos/eos>"],
        unk_id=2,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(lang_dir / "char.model"))
    (lang_dir / "tokens.txt").write_text(
        "".join(f"{sp.id_to_piece(i)} {i}\n" for i in range(sp.get_piece_size()))
    )
    return lang_dir


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Train (24 utts, ~1 s each), valid (6 utts) cut sets and a char lang dir."""
    root = tmp_path_factory.mktemp("corpus")
    return {
        "train": make_cuts(root, "train", 24, seed=1),
        "valid": make_cuts(root, "valid", 6, seed=2),
        "lang": make_char_lang(root / "lang_char"),
    }


@pytest.fixture(scope="session")
def six_updates(corpus, tmp_path_factory) -> Path:
    """A finished 6-update pretraining run (``tiny_pretrain_config``: seed 3, checkpoints at 3
    and 6, polynomial decay to lr 0 at update 6). Read-only: tests copy it before changing it."""
    from hourglass_w2v2.training.config import ExperimentConfig
    from hourglass_w2v2.training.pretrain_task import PretrainTask
    from hourglass_w2v2.training.trainer import Trainer

    exp = tmp_path_factory.mktemp("six_updates") / "exp"
    cfg = ExperimentConfig.from_dict(tiny_pretrain_config(corpus))
    Trainer(cfg, PretrainTask(cfg), exp).fit()
    return exp


def write_config(path: Path, d: dict) -> Path:
    path.write_text(yaml.safe_dump(d))
    return path


def tiny_pretrain_config(corpus: dict[str, Path], **trainer) -> dict:
    """A pretraining config of the ``tiny`` model on the test corpus, a few updates long."""
    return {
        "task": "pretrain",
        "model": {
            "preset": "tiny",
            "num_negatives": 10,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "dropout_input": 0.0,
            "dropout_features": 0.0,
        },
        "data": {
            "train_cuts": [str(corpus["train"])],
            "valid_cuts": [str(corpus["valid"])],
            "max_duration": 3.0,
            "num_workers": 0,
            "num_buckets": 2,
        },
        "optim": {"lr": 1e-3, "weight_decay": 0.01, "clip_grad_norm": 10.0},
        "schedule": {"name": "polynomial", "warmup_updates": 2},
        "trainer": {
            "max_updates": 6,
            "log_interval": 1,
            "save_interval": 3,
            "seed": 3,
            "device": "cpu",
            "progress": False,
            **trainer,
        },
        "health": {"warmup_updates": 1000},
    }


def read_metrics(exp_dir: Path) -> dict[int, dict]:
    """Per-update training metrics of an experiment (the last record wins after a resume)."""
    import json

    out = {}
    for line in (exp_dir / "log" / "train_metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["update"]] = rec
    return out


def cli(module: str, *args: str, **popen):
    """Start ``python -m hourglass_w2v2.bin.<module> args`` in a subprocess."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", f"hourglass_w2v2.bin.{module}", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


@pytest.fixture(scope="session")
def helpers():
    """The helper functions of this conftest (pytest's importlib mode cannot import it)."""
    import types

    return types.SimpleNamespace(
        cli=cli,
        read_metrics=read_metrics,
        tiny_pretrain_config=tiny_pretrain_config,
        write_config=write_config,
        make_cuts=make_cuts,
    )
