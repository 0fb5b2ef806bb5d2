"""A tiny fake LibriSpeech + Libri-Light tree for the tests (as ``lhotse.testing`` ships helpers).

``write_fake_librispeech(dl_dir)`` writes ``dl_dir/LibriSpeech/<part>/...`` and
``dl_dir/librispeech_finetuning/{1h/{0..5},9h}/{clean,other}/...`` in the real layouts, with
short tone-plus-noise FLAC files, and returns what it wrote so tests can compare manifests and
cuts against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

WORDS = "ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL INDIA JULIET KILO LIMA".split()


@dataclass(frozen=True)
class FakeUtterance:
    utt_id: str
    speaker: str
    text: str
    duration: float  # seconds
    sampling_rate: int
    path: Path


def write_utterance(chapter_dir: Path, speaker: int, chapter: int, index: int, text: str,
                    duration: float, sampling_rate: int = 16000, seed: int = 0) -> FakeUtterance:
    """Write one FLAC and append its line to the chapter's ``.trans.txt``."""
    chapter_dir.mkdir(parents=True, exist_ok=True)
    utt_id = f"{speaker}-{chapter}-{index:04d}"
    num_samples = int(round(duration * sampling_rate))
    rng = np.random.default_rng([seed, speaker, chapter, index])
    t = np.arange(num_samples) / sampling_rate
    audio = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.01 * rng.standard_normal(
        num_samples)
    path = chapter_dir / f"{utt_id}.flac"
    sf.write(path, audio.astype(np.float32), sampling_rate, format="FLAC", subtype="PCM_16")
    with open(chapter_dir / f"{speaker}-{chapter}.trans.txt", "a") as f:
        f.write(f"{utt_id} {text}\n")
    return FakeUtterance(utt_id, str(speaker), text, num_samples / sampling_rate, sampling_rate,
                         path)


def _write_split(split_dir: Path, rng: random.Random, speakers: list[int], utts: int,
                 durations: list[float], rates: list[int]) -> dict[str, FakeUtterance]:
    written = {}
    for speaker in speakers:
        chapter = rng.randint(1000, 99999)
        for index in range(utts):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
            utt = write_utterance(split_dir / str(speaker) / str(chapter), speaker, chapter,
                                  index, text, rng.choice(durations), rng.choice(rates),
                                  seed=rng.randint(0, 10**6))
            written[utt.utt_id] = utt
    return written


def write_fake_librispeech(dl_dir: str | Path, seed: int = 0, finetuning: bool = True,
                           ) -> dict[str, dict[str, FakeUtterance]]:
    """Write the fake tree; returns {part or subset name: {utt_id: FakeUtterance}}.

    ``train-clean-100`` has 3 speakers x 3 utterances of 1.2-4 s (some below the 2 s
    pretraining minimum) and one 8 kHz file; dev/test parts 2 x 2 each; every Libri-Light
    folder one or two utterances. Keys include ``train-10min``, ``train-1h``, ``train-10h``
    unless ``finetuning`` is False (then no ``librispeech_finetuning`` folder is written).
    """
    dl_dir = Path(dl_dir)
    rng = random.Random(seed)
    ls = dl_dir / "LibriSpeech"
    out: dict[str, dict[str, FakeUtterance]] = {}
    out["train-clean-100"] = _write_split(ls / "train-clean-100", rng, [103, 1034, 2289], 3,
                                          [1.2, 2.5, 3.0, 4.0], [16000])
    first = next(iter(out["train-clean-100"].values()))
    # One file at another sample rate: stage 3 must resample it.
    resampled = write_utterance(first.path.parent, int(first.speaker),
                                int(first.utt_id.split("-")[1]), 99, "HOTEL INDIA", 3.0, 8000)
    out["train-clean-100"][resampled.utt_id] = resampled
    for part, speakers in (("dev-clean", [84, 174]), ("test-clean", [61, 121]),
                           ("test-other", [367, 533])):
        out[part] = _write_split(ls / part, rng, speakers, 2, [2.0, 3.5], [16000])
    if not finetuning:
        return out
    ft = dl_dir / "librispeech_finetuning"
    folds = {}
    for fold in range(6):
        folds[fold] = {}
        for kind in ("clean", "other"):
            folds[fold] |= _write_split(ft / "1h" / str(fold) / kind, rng,
                                        [rng.randint(5000, 5999)], 1, [1.5, 2.5], [16000])
    nine = {}
    for kind in ("clean", "other"):
        nine |= _write_split(ft / "9h" / kind, rng, [rng.randint(6000, 6999)], 2, [2.0, 3.0],
                             [16000])
    out["train-10min"] = dict(folds[0])
    out["train-1h"] = {k: v for fold in folds.values() for k, v in fold.items()}
    out["train-10h"] = out["train-1h"] | nine
    return out
