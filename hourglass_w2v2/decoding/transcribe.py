"""Transcribe audio files of any format, rate, channel count and length with a CTC model.

Audio is streamed as 16 kHz mono float32 blocks: straight from soundfile when the file is
already 16 kHz, else through ``ffmpeg`` (any format it reads, resampled and downmixed by it),
or, without ffmpeg, read whole by soundfile and resampled with torchaudio. The model sees the
audio in overlapping windows of ``window`` seconds of kept frames plus ``context`` seconds on
each side (:func:`iter_windows`), so the memory the model needs does not grow with the file;
a file shorter than ``window + context`` is one window, exactly the utterance-level
forward pass ``bin.decode`` makes. Per-utterance input normalisation (``data.normalize`` of
the experiment's config) is applied per window.

Words come from CTC greedy search or a 1-best graph search; their start and end times come
from the frame alignment of the CTC path (one frame per 20 ms), see :func:`word_times`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions
from hourglass_w2v2.greedy import ctc_greedy_search
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table
from hourglass_w2v2.models import SAMPLE_RATE

#: samples between two CTC frames of the wav2vec 2.0 extractor (20 ms)
FRAME_SHIFT = 320
#: samples one frame looks at
RECEPTIVE_FIELD = 400
#: samples read per block when streaming a file
BLOCK = SAMPLE_RATE * 4
WORD_BOUNDARY = "\u2581"


class AudioReadError(RuntimeError):
    """An audio file that cannot be read; the message names it and says why."""


def _ffmpeg_blocks(path: Path) -> Iterator[np.ndarray]:
    """16 kHz mono float32 blocks decoded, resampled and downmixed by ffmpeg."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", "1"]
    cmd += ["-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while chunk := proc.stdout.read(BLOCK * 4):
            yield np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype="<f4").copy()
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            detail = err.splitlines()[-1] if err else f"ffmpeg exit status {proc.returncode}"
            raise AudioReadError(f"{path}: cannot read audio ({detail})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _soundfile_blocks(path: Path) -> Iterator[np.ndarray]:
    """Blocks of a file soundfile reads at 16 kHz, channels averaged."""
    with sf.SoundFile(str(path)) as f:
        while True:
            block = f.read(BLOCK, dtype="float32", always_2d=True)
            if len(block) == 0:
                return
            yield block.mean(axis=1, dtype=np.float32)


def audio_blocks(path: str | Path) -> Iterator[np.ndarray]:
    """Stream ``path`` as 16 kHz mono float32 blocks, whatever its format, rate and channels.

    A missing, empty, corrupt or unsupported file raises :class:`AudioReadError` naming it
    (when the first block is requested). Channels are averaged.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioReadError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception:  # soundfile does not read this format: ffmpeg may
        info = None
    if info is not None and info.samplerate == SAMPLE_RATE:
        yield from _soundfile_blocks(path)
    elif shutil.which("ffmpeg"):
        yield from _ffmpeg_blocks(path)
    elif info is not None:
        import torchaudio  # only for this fallback: resampling a whole file

        audio, _ = sf.read(str(path), dtype="float32", always_2d=True)
        mono = torch.from_numpy(audio.mean(axis=1, dtype=np.float32))
        yield torchaudio.functional.resample(mono, info.samplerate, SAMPLE_RATE).numpy()
    else:
        raise AudioReadError(
            f"{path}: soundfile cannot read this format and ffmpeg is not installed "
            "(install ffmpeg, e.g. apt-get install ffmpeg, or convert it to WAV/FLAC)"
        )


def iter_windows(
    blocks: Iterable[np.ndarray], window: int, context: int
) -> Iterator[tuple[np.ndarray, int, int | None]]:
    """Cut a stream of samples into overlapping windows for the model.

    Yields ``(samples, first, count)``: the model's frames ``first .. first + count`` of
    ``samples`` (all the rest when ``count`` is None) are the ones to keep, so that the kept
    frames of consecutive windows follow each other exactly as the frames of the whole file
    would. Each window holds ``window`` samples of kept frames with up to ``context`` samples
    on either side; both must be multiples of :data:`FRAME_SHIFT`. At most ``window + 2 *
    context`` samples are held at a time.
    """
    if window % FRAME_SHIFT or context % FRAME_SHIFT or window <= 0 or context <= 0:
        raise ValueError(
            f"window {window} and context {context} must be positive multiples of {FRAME_SHIFT}"
        )
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # sample index of buf[0] in the file
    core = 0  # first sample of the frames the next window keeps
    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        while buf_start + len(buf) >= core + window + context:
            start = max(core - context, 0)
            end = core + window + context
            yield (
                buf[start - buf_start : end - buf_start],
                (core - start) // FRAME_SHIFT,
                (window // FRAME_SHIFT),
            )
            core += window
            drop = max(core - context, 0) - buf_start
            buf, buf_start = buf[drop:], buf_start + drop
    start = max(core - context, 0)
    tail = buf[start - buf_start :]
    if buf_start + len(buf) >= core + RECEPTIVE_FIELD:  # at least one frame left to keep
        yield tail, (core - start) // FRAME_SHIFT, None


@dataclass
class Word:
    """One recognised word and where it was said (seconds from the start of the file)."""

    word: str
    start: float
    end: float


@dataclass
class Transcript:
    """The words of one file, with times from the CTC alignment."""

    path: str
    text: str
    words: list[Word] = field(default_factory=list)
    duration: float = 0.0


def word_times(frame_units: np.ndarray, id2token: list[str], blank_id: int = 0) -> list[Word]:
    """Words and their times from a frame-level CTC unit alignment (one unit id per frame).

    A unit is emitted at the first frame of a run that is not blank and differs from the frame
    before; its span lasts while the same unit repeats. A unit starting with ``▁`` (or ``▁``
    alone) begins a new word; a word starts at the first frame of its first unit and ends after
    the last frame of its last unit, at 20 ms per frame.
    """
    words: list[Word] = []
    shift = FRAME_SHIFT / SAMPLE_RATE
    prev, current = blank_id, None
    for t, unit in enumerate(int(u) for u in frame_units):
        if unit == blank_id:
            prev = unit
            continue
        if unit == prev:
            if current is not None:
                current.end = (t + 1) * shift
            continue
        prev = unit
        piece = id2token[unit]
        starts_word = piece.startswith(WORD_BOUNDARY) or current is None
        piece = piece.lstrip(WORD_BOUNDARY)
        if starts_word:
            current = Word(piece, t * shift, (t + 1) * shift)
            words.append(current)
        else:
            assert current is not None
            current.word += piece
            current.end = (t + 1) * shift
    return [w for w in words if w.word]


class Transcriber:
    """A CTC model, its units and a search, turning audio files into :class:`Transcript`.

    ``method`` is ``ctc-greedy`` or ``1best`` (``graph`` ``H``, ``HL`` or ``HLG`` of
    ``lang_dir``, searched at LM scale ``lm_scale`` with ``options``). ``window`` and
    ``context`` are in seconds (see :func:`iter_windows`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Tokenizer,
        normalize: bool,
        method: str = "ctc-greedy",
        graph: str = "HLG",
        lm_scale: float = 1.0,
        options: SearchOptions | None = None,
        window: float = 30.0,
        context: float = 2.0,
        device: torch.device | str = "cpu",
    ) -> None:
        if method not in ("ctc-greedy", "1best"):
            raise ValueError(f"transcribe: unknown method {method!r}; use ctc-greedy or 1best")
        self.model, self.tokenizer, self.normalize = model, tokenizer, normalize
        self.method, self.lm_scale, self.device = method, lm_scale, torch.device(device)
        self.window = int(round(window * SAMPLE_RATE / FRAME_SHIFT)) * FRAME_SHIFT
        self.context = int(round(context * SAMPLE_RATE / FRAME_SHIFT)) * FRAME_SHIFT
        self.words: dict[int, str] = {}
        self.graph_search: GraphSearch | None = None
        if method == "1best":
            lang_dir = tokenizer.lang_dir
            self.graph_search = GraphSearch(load_graph(lang_dir / f"{graph}.fst"), options)
            if graph != "H":
                self.words = {i: w for w, i in read_token_table(lang_dir / "words.txt").items()}

    def log_probs(self, samples: np.ndarray) -> np.ndarray:
        """``(T, V)`` float32 log-probs of one window of 16 kHz samples."""
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        with torch.inference_mode():
            out = self.model(x.to(self.device))
            return out.logits.float().log_softmax(-1)[0].cpu().numpy()

    def file_log_probs(self, path: str | Path) -> tuple[np.ndarray, float]:
        """``(T, V)`` log-probs of a whole file through overlapping windows, and its seconds."""
        kept, num_samples = [], 0

        def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            nonlocal num_samples
            for b in blocks:
                num_samples += len(b)
                yield b

        for samples, first, count in iter_windows(
            counted(audio_blocks(path)), self.window, self.context
        ):
            lp = self.log_probs(samples)
            kept.append(lp[first:] if count is None else lp[first : first + count])
        if num_samples == 0:
            raise AudioReadError(f"{path}: no audio samples")
        vocab = self.tokenizer.vocab_size
        out = np.concatenate(kept) if kept else np.zeros((0, vocab), np.float32)
        return out, num_samples / SAMPLE_RATE

    def search(self, log_probs: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Words and the frame-level unit alignment of the best path."""
        if len(log_probs) == 0:
            return [], np.zeros(0, np.int64)
        if self.graph_search is None:
            lp = torch.from_numpy(log_probs)[None]
            ids = ctc_greedy_search(lp, blank_id=self.tokenizer.blank_id)[0]
            return self.tokenizer.decode(ids).split(), log_probs.argmax(-1)
        olabels, frames = self.graph_search.align(log_probs, self.lm_scale)
        if not self.words:
            return self.tokenizer.decode(list(olabels)).split(), frames
        return [self.words[o] for o in olabels], frames

    def transcribe(self, path: str | Path) -> Transcript:
        """The :class:`Transcript` of one audio file; :class:`AudioReadError` if unreadable."""
        log_probs, duration = self.file_log_probs(path)
        words, frames = self.search(log_probs)
        timed = word_times(frames, self.tokenizer.id2token, self.tokenizer.blank_id)
        if [w.word for w in timed] != words:
            # the graph's words are not spelled by the path's units (e.g. <unk>): no times
            timed = [Word(w, float("nan"), float("nan")) for w in words]
        return Transcript(str(path), " ".join(words), timed, duration)


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """The audio files named by ``inputs``: files, folders (every file under them, sorted) and
    list files (``@list.txt``: one path per line)."""
    out: list[Path] = []
    for item in inputs:
        s = str(item)
        if s.startswith("@"):
            lines = Path(s[1:]).read_text(encoding="utf-8").splitlines()
            out += [Path(line.strip()) for line in lines if line.strip()]
        elif Path(s).is_dir():
            out += sorted(p for p in Path(s).rglob("*") if p.is_file())
        else:
            out.append(Path(s))
    return out
