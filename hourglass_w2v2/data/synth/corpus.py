"""The embedded synthetic corpus: espeak-ng speech in the exact LibriSpeech layout.

``generate_corpus`` writes ``<out_dir>/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>
.flac`` (16 kHz mono FLAC) with ``<spk>-<chapter>.trans.txt`` transcripts, ``SPEAKERS.TXT``, and
``<out_dir>/lm/lm-norm.txt`` (LM text). A "speaker" is one espeak-ng voice setting: accent x
voice variant, speaking rate, pitch, word gap and output level, plus a noise condition (spectral
tilt and SNR range). Train and test speakers are disjoint (distinct accent/variant pairs; test-
other uses its own harder variants, faster speech and lower SNR), and every sentence occurs in
exactly one place, so dev/test sentences never appear in training transcripts or the LM text.
Everything is drawn from one seeded RNG in the parent process and each utterance has its own
noise seed, so the corpus is identical for a given seed whatever the number of worker processes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import random
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from hourglass_w2v2.data.synth.grammar import SentenceGrammar, build_lexicon, unique_sentences
from hourglass_w2v2.fileio import atomic_output, atomic_output_dir, atomic_write_text
from hourglass_w2v2.lang.lm import NGrams, backoff_logprob, read_arpa, train_arpa
from hourglass_w2v2.models import SAMPLE_RATE

SUBSETS = ("train-clean-100", "dev-clean", "test-clean", "test-other")

ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)
# espeak-ng variant files that sound distinct from each other (several others alias these).
CLEAN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "adam",
    "Alex", "Andy", "Annie", "aunty", "belinda", "benjamin", "boris", "david", "ed", "edward",
    "edward2", "john", "linda", "max", "Michael", "paul", "rob", "robert", "steph", "steph2",
    "steph3", "zac", "klatt", "klatt2", "klatt3", "iven", "iven2", "Lee", "victor", "quincy",
)
FEMALE_VARIANTS = {
    "f1", "f2", "f3", "f4", "f5", "Annie", "aunty", "belinda", "linda", "steph", "steph2",
    "steph3", "grandma", "whisperf", "shelby",
}
# Rougher voices kept for test-other only, as LibriSpeech's "other" speakers are the harder ones.
HARD_VARIANTS = (
    "croak", "grandpa", "grandma", "klatt4", "klatt5", "norbert", "iven3", "Storm", "whisperf",
    "Gene", "travis", "shelby",
)


@dataclass(frozen=True)
class SubsetSize:
    """How many speakers, chapters per speaker and utterances per chapter a subset has."""

    speakers: int
    chapters: int
    utterances: int

    @property
    def total(self) -> int:
        return self.speakers * self.chapters * self.utterances


@dataclass(frozen=True)
class CorpusSize:
    """Sizes of the four subsets and the number of extra LM-text sentences."""

    train: SubsetSize
    evaluation: SubsetSize  # each of dev-clean, test-clean, test-other
    lm_sentences: int

    def shape(self, subset: str) -> SubsetSize:
        return self.train if subset.startswith("train") else self.evaluation


# Synthetic utterances average about 4.8 s, so "default" is ~1 h of training audio and "large"
# ~12 h; "tiny" is for tests.
SIZES = {
    "tiny": CorpusSize(SubsetSize(3, 1, 3), SubsetSize(2, 1, 2), lm_sentences=200),
    "default": CorpusSize(SubsetSize(48, 1, 16), SubsetSize(10, 1, 20), lm_sentences=30000),
    "large": CorpusSize(SubsetSize(300, 2, 15), SubsetSize(20, 1, 20), lm_sentences=100000),
}


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: espeak-ng settings and the noise condition of its recordings."""

    speaker_id: int
    sex: str
    voice: str  # espeak-ng "-v" argument, accent+variant
    rate: int  # words per minute
    pitch: int  # 0-99
    word_gap: int  # extra pause between words, in units of 10 ms
    level_db: float  # peak level of the output, dBFS
    snr_db: tuple[float, float]  # range the per-utterance SNR is drawn from
    noise_tilt: float  # noise spectrum ~ 1/f^tilt: 0 white, 1 pink, 2 brown


@dataclass(frozen=True)
class UtteranceJob:
    """Everything a worker needs to render one utterance deterministically."""

    path: str
    text: str
    speaker: Speaker
    snr_db: float
    seed: tuple[int, ...]  # numpy SeedSequence entropy for this utterance's noise


def _draw_speakers(rng: random.Random, subset: str, count: int, voices: list[str],
                   ids: list[int]) -> list[Speaker]:
    hard = subset == "test-other"
    speakers = []
    for i in range(count):
        voice = voices[i % len(voices)]
        variant = voice.split("+")[1]
        low_snr = rng.uniform(3.0, 8.0) if hard else rng.uniform(15.0, 25.0)
        speakers.append(Speaker(
            speaker_id=ids.pop(),
            sex="F" if variant in FEMALE_VARIANTS else "M",
            voice=voice,
            rate=rng.randint(185, 240) if hard else rng.randint(135, 185),
            pitch=rng.randint(10, 90) if hard else rng.randint(25, 75),
            word_gap=rng.randint(0, 2),
            level_db=round(rng.uniform(-14.0, -2.0), 1),
            snr_db=(round(low_snr, 1), round(low_snr + (6.0 if hard else 12.0), 1)),
            noise_tilt=round(rng.uniform(0.0, 2.0), 2),
        ))
    return speakers


def plan_speakers(rng: random.Random, size: CorpusSize) -> dict[str, list[Speaker]]:
    """Speakers of every subset; accent/variant pairs of train and test never overlap."""
    clean = [f"{a}+{v}" for a in ACCENTS for v in CLEAN_VARIANTS]
    hard = [f"{a}+{v}" for a in ACCENTS for v in HARD_VARIANTS]
    rng.shuffle(clean)
    rng.shuffle(hard)
    n_eval = size.evaluation.speakers
    dev_voices, test_voices = clean[:n_eval], clean[n_eval : 2 * n_eval]
    train_voices = clean[2 * n_eval :]
    ids = rng.sample(range(100, 10000), size.train.speakers + 3 * n_eval)
    return {
        "train-clean-100": _draw_speakers(rng, "train-clean-100", size.train.speakers,
                                          train_voices, ids),
        "dev-clean": _draw_speakers(rng, "dev-clean", n_eval, dev_voices, ids),
        "test-clean": _draw_speakers(rng, "test-clean", n_eval, test_voices, ids),
        "test-other": _draw_speakers(rng, "test-other", n_eval, hard, ids),
    }


def _colored_noise(rng: np.random.Generator, num_samples: int, tilt: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    spectrum /= np.maximum(freqs, 1.0) ** (tilt / 2.0)
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def render_utterance(job: UtteranceJob) -> tuple[str, int]:
    """Synthesise, resample to 16 kHz, add noise at ``job.snr_db`` and write a FLAC file.

    espeak-ng speaks at 22.05 kHz; sox resamples its output to 16 kHz float samples. Returns
    (path, number of samples). The file is written under a temporary name and renamed, so an
    interrupted run never leaves a truncated FLAC behind.
    """
    spk = job.speaker
    espeak = ["espeak-ng", "-v", spk.voice, "-s", str(spk.rate), "-p", str(spk.pitch),
              "-g", str(spk.word_gap), "--stdout"]
    wav = subprocess.run(espeak, input=job.text.encode(), capture_output=True, check=True).stdout
    sox = ["sox", "-V1", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE),
           "-e", "floating-point", "-b", "32", "-c", "1", "-"]
    raw = subprocess.run(sox, input=wav, capture_output=True, check=True).stdout
    speech = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    rng = np.random.default_rng(job.seed)
    # A little silence around the speech, as in read-speech recordings.
    pad = [int(rng.uniform(0.05, 0.3) * SAMPLE_RATE) for _ in range(2)]
    speech = np.concatenate([np.zeros(pad[0], np.float32), speech, np.zeros(pad[1], np.float32)])
    active = np.abs(speech) > 0.02 * (np.abs(speech).max() + 1e-9)
    speech_power = np.mean(speech[active] ** 2) if active.any() else 1e-6
    noise = _colored_noise(rng, len(speech), spk.noise_tilt)
    mixed = speech + noise * np.sqrt(speech_power / 10 ** (job.snr_db / 10.0))
    mixed *= 10 ** (spk.level_db / 20.0) / (np.abs(mixed).max() + 1e-9)
    with atomic_output(job.path) as tmp:
        sf.write(tmp, np.clip(mixed, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    return job.path, len(mixed)


@dataclass
class PerplexityResult:
    """Perplexity over sentences; ``num_words`` counts the scored tokens, ``</s>`` included."""

    perplexity: float
    log10_prob: float
    num_words: int
    num_oov: int


def perplexity(ngrams: NGrams, sentences: list[str]) -> PerplexityResult:
    """Perplexity of a back-off LM (``hourglass_w2v2.lang.lm.read_arpa``) on sentences.

    As SRILM's ``ngram -ppl``: each sentence is scored from ``<s>`` through ``</s>``; words
    missing from the LM are counted and excluded, and stay in the history (so the next word
    backs off past them).
    """
    vocabulary = {w[0] for w in ngrams[0]}
    total, num_words, num_oov = 0.0, 0, 0
    for sentence in sentences:
        history: tuple[str, ...] = ("<s>",)
        for word in sentence.split() + ["</s>"]:
            if word in vocabulary:
                total += backoff_logprob(ngrams, history, word)
                num_words += 1
            else:
                num_oov += 1
            history = history + (word,)
    return PerplexityResult(10 ** (-total / max(num_words, 1)), total, num_words, num_oov)


def _plan_jobs(rng: random.Random, root: Path, speakers: dict[str, list[Speaker]],
               sentences: dict[str, list[str]], size: CorpusSize, seed: int,
               ) -> tuple[list[UtteranceJob], dict[Path, list[str]]]:
    jobs: list[UtteranceJob] = []
    transcripts: dict[Path, list[str]] = {}
    chapter_ids = iter(rng.sample(range(10000, 300000), sum(
        len(s) * size.shape(name).chapters for name, s in speakers.items())))
    for subset, subset_speakers in speakers.items():
        shape = size.shape(subset)
        texts = iter(sentences[subset])
        for spk in subset_speakers:
            for _ in range(shape.chapters):
                chapter = next(chapter_ids)
                chapter_dir = root / subset / str(spk.speaker_id) / str(chapter)
                lines = transcripts.setdefault(
                    chapter_dir / f"{spk.speaker_id}-{chapter}.trans.txt", [])
                for utt in range(shape.utterances):
                    utt_id = f"{spk.speaker_id}-{chapter}-{utt:04d}"
                    text = next(texts)
                    lines.append(f"{utt_id} {text}")
                    jobs.append(UtteranceJob(
                        path=str(chapter_dir / f"{utt_id}.flac"),
                        text=text,
                        speaker=spk,
                        snr_db=round(rng.uniform(*spk.snr_db), 2),
                        seed=(seed, spk.speaker_id, chapter, utt),
                    ))
    return jobs, transcripts


def generate_corpus(out_dir: str | Path, size: str | CorpusSize = "default", seed: int = 42,
                    num_jobs: int = 2, force: bool = False) -> dict:
    """Generate the corpus under ``out_dir`` and return its statistics (also saved as JSON).

    Writes ``out_dir/LibriSpeech`` (built as ``.LibriSpeech.partial`` and renamed when complete,
    :func:`~hourglass_w2v2.fileio.atomic_output_dir`)
    and ``out_dir/lm/lm-norm.txt``. Skips all work when both exist, unless ``force``. The
    statistics include the vocabulary size and the perplexity of a 3-gram (and, for scale, a
    1-gram) trained on the LM text, measured on the test sentences.
    """
    out_dir = Path(out_dir)
    root, lm_text = out_dir / "LibriSpeech", out_dir / "lm" / "lm-norm.txt"
    stats_path = root / "SYNTH-CORPUS.json"
    if root.is_dir() and lm_text.is_file() and stats_path.is_file() and not force:
        logging.info(f"{root} and {lm_text} exist: skipping generation (use --force to redo)")
        return json.loads(stats_path.read_text())
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: install it (apt-get install espeak-ng sox)")
    corpus_size = SIZES[size] if isinstance(size, str) else size
    start = time.time()
    rng = random.Random(seed)
    grammar = SentenceGrammar(build_lexicon())
    speakers = plan_speakers(rng, corpus_size)

    # Evaluation sentences are drawn first; `used` makes every later draw disjoint from them.
    used: set[str] = set()
    sentences = {
        subset: unique_sentences(grammar, rng, corpus_size.shape(subset).total, used)
        for subset in ("test-clean", "test-other", "dev-clean", "train-clean-100")
    }
    lm_sentences = sentences["train-clean-100"] + unique_sentences(
        grammar, rng, corpus_size.lm_sentences, used)

    logging.info(f"Training 3-gram and 1-gram LMs on {len(lm_sentences)} LM-text sentences")
    test_sentences = sentences["test-clean"] + sentences["test-other"]
    ppl = {}
    with tempfile.TemporaryDirectory() as scratch:
        text = Path(scratch) / lm_text.name
        text.write_text("\n".join(lm_sentences) + "\n")
        for order in (3, 1):
            train_arpa([text], order, Path(scratch) / f"{order}-gram.arpa")
            ppl[order] = perplexity(read_arpa(Path(scratch) / f"{order}-gram.arpa"), test_sentences)
    vocabulary = {w for s in lm_sentences for w in s.split()}

    with atomic_output_dir(root, replace=True) as partial:
        jobs, transcripts = _plan_jobs(rng, partial, speakers, sentences, corpus_size, seed)
        for trans_path, lines in transcripts.items():
            trans_path.parent.mkdir(parents=True, exist_ok=True)
            trans_path.write_text("\n".join(lines) + "\n")

        logging.info(f"Synthesising {len(jobs)} utterances with {num_jobs} processes")
        num_samples: dict[str, int] = {}
        if num_jobs > 1:
            with multiprocessing.get_context("fork").Pool(num_jobs) as pool:
                for path, n in tqdm(pool.imap_unordered(render_utterance, jobs, chunksize=8),
                                    total=len(jobs), desc="espeak-ng"):
                    num_samples[path] = n
        else:
            for job in tqdm(jobs, desc="espeak-ng"):
                num_samples[job.path] = render_utterance(job)[1]

        subset_stats = {}
        for subset in SUBSETS:
            seconds = sum(n for p, n in num_samples.items()
                          if Path(p).relative_to(partial).parts[0] == subset) / SAMPLE_RATE
            subset_stats[subset] = {
                "speakers": len(speakers[subset]),
                "utterances": len(sentences[subset]),
                "hours": round(seconds / 3600, 4),
            }
        speaker_lines = [
            f"{s.speaker_id:<5}| {s.sex} | {subset:<16}| "
            f"{subset_stats[subset]['hours'] * 60 / len(speakers[subset]):6.2f} | "
            f"{s.voice} rate={s.rate} pitch={s.pitch} gap={s.word_gap} tilt={s.noise_tilt} "
            f"snr={s.snr_db[0]}-{s.snr_db[1]}dB"
            for subset in SUBSETS for s in speakers[subset]
        ]
        (partial / "SPEAKERS.TXT").write_text(
            "; Synthetic speakers (espeak-ng settings)\n"
            "; ID  |SEX| SUBSET          |MINUTES| VOICE\n" + "\n".join(speaker_lines) + "\n")
        stats = {
            "seed": seed,
            "size": asdict(corpus_size),
            "subsets": subset_stats,
            "lm_text_sentences": len(lm_sentences),
            "vocabulary_size": len(vocabulary),
            "grammar_vocabulary_size": len(grammar.lex.vocabulary()),
            "test_3gram_perplexity": round(ppl[3].perplexity, 2),
            "test_1gram_perplexity": round(ppl[1].perplexity, 2),
            "test_oov_words": ppl[3].num_oov,
            "test_words": ppl[3].num_words,
            "generation_seconds": round(time.time() - start, 1),
        }
        (partial / "SYNTH-CORPUS.json").write_text(json.dumps(stats, indent=2) + "\n")
    atomic_write_text(lm_text, "\n".join(lm_sentences) + "\n")  # last: it marks the corpus done
    return stats
