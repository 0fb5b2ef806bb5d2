"""A small fake Libri-Light tree in the real layout, for the recipe's Libri-Light stage.

Libri-Light's unlabeled parts hold ``<part>/<speaker>/<book>/<file>.flac`` (long audiobook
chapters) each with ``<file>.json`` next to it, whose ``voice_activity`` lists the
``[start, end]`` seconds of speech found by the corpus's VAD, along with ``speaker``, ``snr``
and ``book_meta``. Here the audio is noise at a low level with louder bursts where the VAD
says speech is, so a listener (or a VAD) would agree with the JSON.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


@dataclass
class FakeChapter:
    """One generated file: where it is, its length and its voice-activity segments."""

    part: str
    speaker: str
    book: str
    name: str
    duration: float
    voice_activity: list[list[float]] = field(default_factory=list)

    @property
    def recording_id(self) -> str:
        """The id lhotse's ``librilight`` recipe gives it: the path without ``.flac``."""
        return f"{self.part}/{self.speaker}/{self.book}/{self.name}"


def _voice_activity(rng: random.Random, duration: float) -> list[list[float]]:
    """Speech stretches of 0.5-9 s separated by 0.2-1.5 s pauses, inside ``duration``."""
    segments, t = [], rng.uniform(0.1, 0.6)
    while True:
        length = rng.uniform(0.5, 9.0)
        if t + length > duration - 0.1:
            break
        segments.append([round(t, 2), round(t + length, 2)])
        t += length + rng.uniform(0.2, 1.5)
    return segments


def write_chapter(root: Path, chapter: FakeChapter, seed: int) -> None:
    """Write ``chapter``'s FLAC and JSON under ``root`` as Libri-Light lays them out."""
    folder = root / chapter.part / chapter.speaker / chapter.book
    folder.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(seed)
    n = round(chapter.duration * SAMPLE_RATE)
    audio = 0.003 * gen.standard_normal(n)
    for start, end in chapter.voice_activity:
        a, b = round(start * SAMPLE_RATE), round(end * SAMPLE_RATE)
        audio[a:b] += 0.2 * np.sin(np.arange(b - a) * 2 * np.pi * 220 / SAMPLE_RATE)
    sf.write(folder / f"{chapter.name}.flac", audio.astype(np.float32), SAMPLE_RATE,
             format="FLAC", subtype="PCM_16")
    meta = {
        "speaker": chapter.speaker,
        "snr": 12.5,
        "voice_activity": chapter.voice_activity,
        "book_meta": {"id": chapter.book.split("_")[-1], "title": chapter.book,
                      "duration": f"{chapter.duration:.2f}"},
    }
    (folder / f"{chapter.name}.json").write_text(json.dumps(meta))


def write_fake_librilight(root: str | Path, parts: tuple[str, ...] = ("small",),
                          speakers: int = 2, books: int = 2, files: int = 2,
                          seed: int = 0) -> list[FakeChapter]:
    """A tree of ``parts`` x speakers x books x files chapters of 20-60 s; returns them all."""
    root = Path(root)
    rng = random.Random(seed)
    chapters = []
    for part in parts:
        for s in range(speakers):
            speaker = str(100 + 17 * s + 3 * len(part))
            for b in range(books):
                book = f"book{b}_librivox_64kb_mp3"
                for f in range(files):
                    duration = round(rng.uniform(20.0, 60.0), 2)
                    chapter = FakeChapter(part, speaker, book, f"{f:02d}_reader_{b}_64kb",
                                          duration, _voice_activity(rng, duration))
                    write_chapter(root, chapter, seed=rng.randrange(2**31))
                    chapters.append(chapter)
    return chapters
