"""Decoding speed: our 1best-HLG (kaldi-decoder) vs torchaudio's flashlight lexicon decoder.

Both search the same CTC log-probs with the same lexicon and the same 3-gram ARPA LM, at equal
beam (``--beam`` log-prob units for both) and equal LM weight; the script prints each decoder's
real-time factor (search seconds / audio seconds, the acoustic model excluded since it is shared),
its WER, and the ratio of the RTFs.

By default everything is synthetic and self-contained: a random vocabulary, sentences from a
random bigram process, a char lang dir, a 3-gram trained with arpabo on sentences other than the
test ones, HLG compiled with kaldifst,
and log-probs from a fake peaky CTC model (one-frame unit spikes between blanks, half of them
confused with a random unit, 20 ms frames). Pass ``--lang-dir``, ``--arpa`` and ``--text`` to use a
recipe's lang dir, LM and sentences instead (log-probs stay synthetic).

    python benchmarks/decode_speed.py [--num-utts 200] [--beam 16] [--lm-scale 1.0]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hourglass_w2v2.decoding.graph import load_graph
from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions
from hourglass_w2v2.lang.graphs import compile_graphs
from hourglass_w2v2.lang.lm import train_arpa
from hourglass_w2v2.lang.prepare import prepare_lang, read_lexicon
from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table
from hourglass_w2v2.scoring import error_stats

FRAME_SECONDS = 0.02


def synthetic_sentences(rng: np.random.Generator, num_words: int, num: int) -> list[str]:
    """Sentences from a random bigram process over random letter-string words."""
    letters = list("ABCDEFGHIJKLMNOPRSTUVWY")
    vocab: set[str] = set()
    while len(vocab) < num_words:
        vocab.add("".join(rng.choice(letters, size=rng.integers(2, 8))))
    words = sorted(vocab)
    followers = rng.integers(0, num_words, size=(num_words, 8))
    out = []
    for _ in range(num):
        w = int(rng.integers(num_words))
        sentence = [words[w]]
        for _ in range(int(rng.integers(4, 15))):
            w = (
                int(followers[w, rng.integers(8)])
                if rng.random() < 0.8
                else int(rng.integers(num_words))
            )
            sentence.append(words[w])
        out.append(" ".join(sentence))
    return out


def peaky_log_probs(rng: np.random.Generator, units: list[int], vocab_size: int) -> np.ndarray:
    """Fake CTC log-probs for ``units`` (see the module docstring)."""
    frames, spikes = [], []
    for u in units:
        frames += [0] * int(rng.integers(1, 4))
        spikes.append(len(frames))
        frames.append(u)
    frames.append(0)
    logits = rng.normal(size=(len(frames), vocab_size))
    logits[np.arange(len(frames)), frames] += 8.0
    for t in spikes:
        if rng.random() < 0.5:
            logits[t, rng.integers(3, vocab_size)] = logits[t, frames[t]] + rng.normal(1.5, 1.5)
    logits[:, 1] -= 20  # <sos/eos> is never emitted
    logits = logits.astype(np.float32)
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def flashlight_decoder(
    lang: Path,
    work: Path,
    arpa: Path | None,
    beam: float,
    beam_size: int = 500,
    lm_weight: float = 1.0,
):
    """torchaudio's flashlight lexicon decoder over the lang dir's units and lexicon.

    Its silence token is ``<sos/eos>``, which a CTC model never emits: our units carry the word
    boundary in ``▁`` at the start of each spelling. ``<UNK>`` is left out of its lexicon since
    flashlight scores the unk word separately (``unk_score``).
    """
    from torchaudio.models.decoder import ctc_decoder

    lexicon = work / "flashlight_lexicon.txt"
    lexicon.write_text(
        "".join(
            f"{w}\t{' '.join(p)}\n" for w, p in read_lexicon(lang / "lexicon.txt") if w != "<UNK>"
        )
    )
    return ctc_decoder(
        lexicon=str(lexicon),
        tokens=Tokenizer(lang).id2token,
        lm=None if arpa is None else str(arpa),
        nbest=1,
        beam_size=beam_size,
        beam_threshold=beam,
        lm_weight=lm_weight if arpa is not None else 0.0,
        word_score=0.0,
        sil_score=0.0,
        unk_word="<UNK>",
        blank_token="<blk>",
        sil_token="<sos/eos>",
        log_add=False,
    )


def build_lang(work: Path, sentences: list[str]) -> tuple[Path, Path]:
    (work / "text.txt").write_text("\n".join(sentences) + "\n")
    lang = work / "lang_char"
    prepare_lang([work / "text.txt"], lang, "char")
    arpa = train_arpa([work / "text.txt"], 3, work / "G_3_gram.arpa")
    compile_graphs(lang, arpa)
    return lang, arpa


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lang-dir", type=Path, default=None)
    p.add_argument("--arpa", type=Path, default=None)
    p.add_argument("--text", type=Path, default=None, help="sentences to decode (one a line)")
    p.add_argument("--num-words", type=int, default=3000, help="synthetic vocabulary size")
    p.add_argument("--num-utts", type=int, default=200)
    p.add_argument("--beam", type=float, default=16.0)
    p.add_argument("--max-active", type=int, default=1000)
    p.add_argument("--flashlight-beam-size", type=int, default=500, help="max hypotheses kept")
    p.add_argument("--lm-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.lang_dir is not None:
            if args.arpa is None or args.text is None:
                raise SystemExit("--lang-dir needs --arpa and --text")
            lang, arpa = args.lang_dir, args.arpa
            lines = [s.strip() for s in args.text.read_text().splitlines() if s.strip()]
            sentences = [lines[i] for i in rng.permutation(len(lines))[: args.num_utts]]
        else:
            corpus = synthetic_sentences(rng, args.num_words, 21 * args.num_utts)
            # the test sentences are held out of the LM text
            sentences, lm_text = corpus[: args.num_utts], corpus[args.num_utts :]
            lang, arpa = build_lang(work, lm_text)
        tok = Tokenizer(lang)
        data = [(s.split(), peaky_log_probs(rng, tok.encode(s), tok.vocab_size)) for s in sentences]
        audio_seconds = sum(len(lp) for _, lp in data) * FRAME_SECONDS

        words = {i: w for w, i in read_token_table(lang / "words.txt").items()}
        search = GraphSearch(
            load_graph(lang / "HLG.fst"), SearchOptions(beam=args.beam, max_active=args.max_active)
        )
        start = time.perf_counter()
        ours = [
            (str(i), ref, [words[o] for o in search.best_path(lp, args.lm_scale)])
            for i, (ref, lp) in enumerate(data)
        ]
        ours_seconds = time.perf_counter() - start

        fl = flashlight_decoder(
            lang, work, arpa, args.beam, args.flashlight_beam_size, args.lm_scale
        )
        emissions = [torch.from_numpy(lp)[None] for _, lp in data]
        start = time.perf_counter()
        theirs = [
            (str(i), ref, list(fl(e)[0][0].words))
            for i, ((ref, _), e) in enumerate(zip(data, emissions, strict=True))
        ]
        fl_seconds = time.perf_counter() - start

    wer_ours = error_stats(ours)[0].error_rate
    wer_fl = error_stats(theirs)[0].error_rate
    rtf_ours, rtf_fl = ours_seconds / audio_seconds, fl_seconds / audio_seconds
    print(
        f"{len(data)} utterances, {audio_seconds:.0f} s of audio, {tok.vocab_size} units, "
        f"{len(words)} words, beam {args.beam}, LM scale {args.lm_scale}"
    )
    print("| decoder | WER % | search RTF |")
    print("|---|---|---|")
    print(f"| 1best-HLG (kaldi-decoder) | {wer_ours:.2f} | {rtf_ours:.5f} |")
    print(f"| flashlight ctc_decoder (lexicon + 3-gram) | {wer_fl:.2f} | {rtf_fl:.5f} |")
    print(f"RTF ratio ours / flashlight: {rtf_ours / rtf_fl:.3f}")


if __name__ == "__main__":
    main()
