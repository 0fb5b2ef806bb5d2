"""Language side at LibriSpeech size: lang dir, 3-gram, HLG, 1best search, 4-gram load.

Stand-ins for the official LibriSpeech LM files are generated: a word list (syllable words,
Zipf-distributed, shorter words more frequent), transcripts sampled from it, and ARPA n-gram
models sized like the official files (``COUNTS_3GRAM``, ``COUNTS_4GRAM``; ``--scale``
multiplies them). Every n-gram's prefix and suffix are n-grams of the order below, as in a
pruned back-off LM. The lang dir and graphs are then made by the recipe's own entry points,
each step in its own process:

1. ``words``: word list, transcripts (sentencepiece training text), sentences to decode;
2. ``prepare_lang``: ``python -m hourglass_w2v2.bin.prepare_lang --unit bpe --vocab-size 500``;
3. ``arpa3``: the 3-gram ARPA (sized like ``3-gram.pruned.1e-7.arpa``);
4. ``compile_graphs``: ``python -m hourglass_w2v2.bin.compile_graphs --arpa ...`` (H, L, HL,
   G with kaldilm, LG and HLG with kaldifst); one phase row per graph it logs;
5. ``search``: ``HLG.fst`` loaded with ``load_graph`` and searched by ``GraphSearch.best_path``
   (the ``1best`` method) over peaky CTC posteriors of the sentences (50 frames/s);
6. ``arpa4`` / ``rescore_lm``: a 4-gram ARPA sized like ``4-gram.arpa`` (written
   streaming) and its load by the ``lm-rescore`` method's ``NgramScorer`` (kenlm).

For each step the script prints wall time, the peak RSS of the step's process (``wait4``) and
what it made. Each step's address space is capped with ``--max-memory-gb`` (``RLIMIT_AS``).

    python benchmarks/graph_scale.py --scale 1.0 --work-dir /tmp/graph_scale
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

# n-gram counts per order sized like the official files (openslr.org/11): 200,003 unigrams,
# ~3.8M (3-gram.pruned.1e-7) and ~145M (4-gram) n-grams in all; the split per order is estimated
COUNTS_3GRAM = (200_003, 1_635_000, 1_965_000)
COUNTS_4GRAM = (200_003, 38_229_000, 63_056_000, 44_002_000)
FRAMES_PER_SECOND = 50
WORDS_PER_SECOND = 2.7  # read speech (LibriSpeech test-clean: ~2.7 words/s)
SPECIALS = ("<s>", "</s>", "<UNK>")  # ids 0, 1, 2 of the generated vocabulary

ONSETS = "B BR C CH CL D DR F FL G GR H J K L M N P PL PR R S SH SK SP ST T TH TR V W WH Y".split()
VOWELS = "A E I O U EA OU AI EE OO IE Y".split()
CODAS = "N R S T L D NG ND ST CK M RS TH NT LL".split()


def _zipf(n: int, exponent: float = 1.0, offset: float = 2.7) -> np.ndarray:
    """Zipf-Mandelbrot probabilities of ranks ``0..n-1``."""
    p = 1.0 / (np.arange(n) + offset) ** exponent
    return p / p.sum()


def make_words(rng: np.random.Generator, num_words: int) -> list[str]:
    """``num_words`` distinct syllable words, most frequent first (shorter words rank higher)."""
    syllables = [o + v + c for o in ["", *ONSETS] for v in VOWELS for c in ["", "", *CODAS]]
    syl_p = _zipf(len(syllables), 1.1, 5.0)
    words: dict[str, int] = {}
    while len(words) < num_words:
        n = num_words
        lengths = rng.choice([1, 2, 3, 4], size=n, p=[0.15, 0.4, 0.3, 0.15])
        picks = rng.choice(len(syllables), size=(n, 4), p=syl_p)
        suffix = rng.random(n) < 0.04
        for i in range(n):
            w = "".join(syllables[j] for j in picks[i, : lengths[i]])
            if suffix[i]:
                w += "'S"
            words.setdefault(w, int(lengths[i]))
            if len(words) == num_words:
                break
    order = sorted(words, key=lambda w: (words[w], rng.random()))
    return order


def sample_sentences(
    rng: np.random.Generator, words: list[str], num: int, min_len: int, max_len: int
) -> list[str]:
    """Sentences of Zipf-sampled words."""
    p = _zipf(len(words))
    lengths = rng.integers(min_len, max_len + 1, size=num)
    ids = rng.choice(len(words), size=int(lengths.sum()), p=p)
    out, pos = [], 0
    for n in lengths:
        out.append(" ".join(words[i] for i in ids[pos : pos + n]))
        pos += n
    return out


def _grow_unique(sample, target: int, rng: np.random.Generator) -> np.ndarray:
    """Draw keys with ``sample(n)`` until ``target`` distinct ones; return them sorted."""
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < target:
        need = target - len(keys)
        # big batches even when few keys are missing: each round re-sorts all keys; at most 8M
        # draws keep the (N, order) id arrays small
        new = np.unique(sample(min(max(2 * need, target // 4, 1000), 8_000_000)))
        keys = np.union1d(keys, new)
    if len(keys) > target:
        keys = np.sort(rng.choice(keys, size=target, replace=False))
    return keys


class NgramSet:
    """Random back-off n-grams over ``V`` token ids with prefix- and suffix-closed orders.

    Order 2 is ``h * V + w`` keys; order ``n > 2`` is ``prefix_index * V + w`` with
    ``prefix_index`` a row of order ``n - 1``, and ``w`` drawn among the successors of the
    ``n - 1``-gram suffix, so both the prefix and the suffix of every n-gram exist.
    """

    def __init__(self, rng: np.random.Generator, vocab: int, counts: tuple[int, ...]) -> None:
        self.rng, self.V = rng, vocab
        unigram = _zipf(vocab - 3)
        # <s> starts and </s> ends ~1 in 20 tokens; <UNK> is rare
        hist = np.concatenate([[0.05, 0.0, 1e-4], unigram * 0.95])
        targ = np.concatenate([[0.0, 0.05, 1e-4], unigram * 0.95])
        hist, targ = hist / hist.sum(), targ / targ.sum()
        self.unigram_logp = np.log10(np.maximum(targ, 1e-9))
        self.unigram_logp[0] = -99.0
        # flatter pair sampling: a pruned LM keeps many pairs of rarer words
        hist_flat = hist**0.8 / (hist**0.8).sum()
        targ_flat = targ**0.8 / (targ**0.8).sum()
        self.orders: list[np.ndarray] = []
        self.orders.append(
            _grow_unique(
                lambda n: (
                    rng.choice(vocab, n, p=hist_flat) * vocab + rng.choice(vocab, n, p=targ_flat)
                ),
                counts[1],
                rng,
            )
        )
        for count in counts[2:]:
            self.orders.append(self._extend(count))

    def words_of(self, order: int, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), order)`` token ids of rows of ``order`` (2 = bigrams)."""
        keys = self.orders[order - 2][rows]
        last = keys % self.V
        prefix = keys // self.V
        if order == 2:
            return np.stack([prefix, last], axis=1)
        return np.concatenate([self.words_of(order - 1, prefix), last[:, None]], axis=1)

    def _index_of(self, order: int, words: np.ndarray) -> np.ndarray:
        """Row index in ``order`` of n-grams given as ``(N, order)`` ids (they must exist)."""
        if order == 2:
            key = words[:, 0] * self.V + words[:, 1]
        else:
            key = self._index_of(order - 1, words[:, :-1]) * self.V + words[:, -1]
        return np.searchsorted(self.orders[order - 2], key)

    def _extend(self, count: int) -> np.ndarray:
        top = len(self.orders) + 1  # order of the rows being extended
        keys = self.orders[-1]
        # rows of the top order sharing a prefix are contiguous (keys are sorted): CSR starts
        num_prefixes = self.V if top == 2 else len(self.orders[-2])
        starts = np.searchsorted(keys // self.V, np.arange(num_prefixes + 1))
        rng = self.rng

        def sample(n: int) -> np.ndarray:
            rows = rng.integers(0, len(keys), size=n)
            words = self.words_of(top, rows)
            words = words[words[:, -1] != 1]  # nothing follows </s>
            if top == 2:
                suffix_rows = words[:, 1]  # the bigram rows are keyed by their first word
            else:
                suffix_rows = self._index_of(top - 1, words[:, 1:])
            lo, hi = starts[suffix_rows], starts[suffix_rows + 1]
            ok = hi > lo
            pick = lo[ok] + (rng.random(int(ok.sum())) * (hi[ok] - lo[ok])).astype(np.int64)
            prefix_rows = self._index_of(top, words[ok])
            return prefix_rows * self.V + keys[pick] % self.V

        return _grow_unique(sample, count, rng)


def _fixed(values: np.ndarray) -> list[str]:
    return [f"{v:.4f}" for v in values]


def write_arpa(ngrams: NgramSet, vocab: list[str], path: Path, chunk: int = 1_000_000) -> int:
    """Write the n-grams as ARPA, chunk by chunk; returns the file size in bytes."""
    rng = ngrams.rng
    # log10 probabilities and back-off weights drawn from a small table of formatted values
    prob_table = _fixed(np.linspace(-6.0, -0.05, 512))
    bow_table = _fixed(np.linspace(-1.5, -0.01, 256))
    top = len(ngrams.orders) + 1
    counts = [len(vocab)] + [len(k) for k in ngrams.orders]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\\data\\\n" + "".join(f"ngram {i + 1}={c}\n" for i, c in enumerate(counts)))
        f.write("\n\\1-grams:\n")
        bows = rng.integers(0, len(bow_table), size=len(vocab))
        for i, w in enumerate(vocab):
            f.write(f"{ngrams.unigram_logp[i]:.4f}\t{w}\t{bow_table[bows[i]]}\n")
        for order in range(2, top + 1):
            f.write(f"\n\\{order}-grams:\n")
            n = counts[order - 1]
            for start in range(0, n, chunk):
                rows = np.arange(start, min(start + chunk, n))
                ids = ngrams.words_of(order, rows)
                texts = [" ".join(vocab[i] for i in row) for row in ids.tolist()]
                probs = rng.integers(0, len(prob_table), size=len(rows))
                if order == top:
                    lines = [f"{prob_table[p]}\t{t}\n" for p, t in zip(probs, texts, strict=True)]
                else:
                    bows = rng.integers(0, len(bow_table), size=len(rows))
                    lines = [
                        f"{prob_table[p]}\t{t}\t{bow_table[b]}\n"
                        for p, t, b in zip(probs, texts, bows, strict=True)
                    ]
                f.write("".join(lines))
        f.write("\n\\end\\\n")
    os.replace(tmp, path)
    return path.stat().st_size


def _scaled(counts: tuple[int, ...], scale: float, num_words: int) -> tuple[int, ...]:
    return (num_words + len(SPECIALS), *(max(10, round(c * scale)) for c in counts[1:]))


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------- steps (child processes)


def step_words(args: argparse.Namespace) -> dict:
    """Write the ranked word list, the BPE training transcripts and the sentences to decode."""
    rng = np.random.default_rng(args.seed)
    work = args.work_dir
    words = make_words(rng, args.num_words)
    (work / "words_by_rank.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    num = max(200, round(args.num_transcripts))
    (work / "transcripts.txt").write_text(
        "\n".join(sample_sentences(rng, words, num, 5, 35)) + "\n", encoding="utf-8"
    )
    # ~10 s utterances at WORDS_PER_SECOND
    (work / "test_sentences.txt").write_text(
        "\n".join(sample_sentences(rng, words, args.num_utts, 24, 30)) + "\n", encoding="utf-8"
    )
    return {"words": len(words), "transcripts": num}


def step_arpa(args: argparse.Namespace, order: int) -> dict:
    """Sample an ``order``-gram LM over the word list and write it as ``G_<order>_gram.arpa``."""
    rng = np.random.default_rng(args.seed + order)
    words = (args.work_dir / "words_by_rank.txt").read_text(encoding="utf-8").split()
    vocab = [*SPECIALS, *words]
    if order == 3:
        counts = _scaled(COUNTS_3GRAM, args.scale, len(words))
    else:
        counts = _scaled(COUNTS_4GRAM, args.fourgram_scale, len(words))
    start = time.perf_counter()
    ngrams = NgramSet(rng, len(vocab), counts)
    sampled = time.perf_counter() - start
    path = args.work_dir / f"G_{order}_gram.arpa"
    size = write_arpa(ngrams, vocab, path)
    return {
        "ngram_counts": counts,
        "arpa_bytes": size,
        "sample_s": round(sampled, 1),
        "write_s": round(time.perf_counter() - start - sampled, 1),
    }


def step_search(args: argparse.Namespace) -> dict:
    """Load ``HLG.fst`` and time the ``1best`` search over the sentences' peaky posteriors."""
    from hourglass_w2v2.decoding.graph import load_graph
    from hourglass_w2v2.decoding.search import GraphSearch, SearchOptions
    from hourglass_w2v2.lang.tokenizer import Tokenizer, read_token_table
    from hourglass_w2v2.scoring import error_stats

    lang = args.work_dir / "lang_bpe_500"
    rng = np.random.default_rng(args.seed + 7)
    tok = Tokenizer(lang)
    id2word = {i: w for w, i in read_token_table(lang / "words.txt").items()}
    sentences = (args.work_dir / "test_sentences.txt").read_text(encoding="utf-8").splitlines()
    rss0 = _rss_kb()
    start = time.perf_counter()
    graph = load_graph(lang / "HLG.fst")
    load_s = time.perf_counter() - start
    rss_graph = _rss_kb() - rss0
    options = SearchOptions(beam=args.beam, max_active=args.max_active)
    search = GraphSearch(graph, options)
    decode_s = audio_s = 0.0
    results = []
    for i, text in enumerate(sentences):
        seconds = len(text.split()) / WORDS_PER_SECOND
        units = tok.encode(text)
        lp = peaky_log_probs(
            rng, units, round(seconds * FRAMES_PER_SECOND), tok.vocab_size, args.confusion
        )
        audio_s += len(lp) / FRAMES_PER_SECOND
        start = time.perf_counter()
        hyp = [id2word[i] for i in search.best_path(lp, args.lm_scale)]
        decode_s += time.perf_counter() - start
        results.append((str(i), text.split(), hyp))
    return {
        "graph_load_s": round(load_s, 1),
        "graph_rss_mb": round(rss_graph / 1024),
        "utterances": len(sentences),
        "audio_s": round(audio_s, 1),
        "decode_s": round(decode_s, 2),
        "rtf": round(decode_s / audio_s, 4),
        "wer": round(error_stats(results)[0].error_rate, 2),
        "beam": args.beam,
        "max_active": args.max_active,
        "lm_scale": args.lm_scale,
    }


def step_rescore_lm(args: argparse.Namespace) -> dict:
    """Load the 4-gram with the rescoring scorer (kenlm) and score the sentences with it."""
    from hourglass_w2v2.lang.lm import NgramScorer

    sentences = (args.work_dir / "test_sentences.txt").read_text(encoding="utf-8").splitlines()
    rss0 = _rss_kb()
    start = time.perf_counter()
    scorer = NgramScorer(args.work_dir / "G_4_gram.arpa", backend="kenlm")
    load_s = time.perf_counter() - start
    rss_lm = _rss_kb() - rss0
    start = time.perf_counter()
    costs = [scorer.cost(s.split()) for s in sentences]
    return {
        "load_s": round(load_s, 1),
        "lm_rss_mb": round(rss_lm / 1024),
        "scored": len(costs),
        "score_ms_per_sentence": round(1000 * (time.perf_counter() - start) / len(costs), 3),
        "finite": bool(np.isfinite(costs).all()),
    }


def peaky_log_probs(
    rng: np.random.Generator, units: list[int], num_frames: int, vocab_size: int, confusion: float
) -> np.ndarray:
    """``(num_frames, vocab_size)`` CTC log-probs of a random model that mostly gets ``units``.

    Each unit is one spike frame at a random place (at least one blank frame between spikes),
    every other frame is blank-led; with probability ``confusion`` the spike's best unit is a
    random other unit. Logits are Gaussian noise plus 8 on the intended label, so every frame
    keeps some mass on all units, as a real model's posteriors do.
    """
    n = len(units)
    num_frames = max(num_frames, 2 * n + 1)
    spikes = np.sort(rng.choice(num_frames - 2 * n, size=n, replace=False)) + 2 * np.arange(n)
    frames = np.zeros(num_frames, dtype=np.int64)
    frames[spikes] = units
    logits = rng.normal(size=(num_frames, vocab_size)).astype(np.float32)
    logits[np.arange(num_frames), frames] += 8.0
    confused = spikes[rng.random(n) < confusion]
    wrong = rng.integers(3, vocab_size, size=len(confused))
    logits[confused, wrong] = logits[confused, frames[confused]] + 1.0
    logits[:, 1] -= 20  # <sos/eos> is never emitted
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


STEPS = ("words", "prepare_lang", "arpa3", "compile_graphs", "search", "arpa4", "rescore_lm")


def run_child_step(args: argparse.Namespace) -> None:
    """Entry of a child process: run one generation/measurement step, print its JSON."""
    name = args.child
    if name == "words":
        out = step_words(args)
    elif name in ("arpa3", "arpa4"):
        out = step_arpa(args, int(name[-1]))
    elif name == "search":
        out = step_search(args)
    elif name == "rescore_lm":
        out = step_rescore_lm(args)
    else:
        raise SystemExit(f"unknown step {name!r}; steps are {', '.join(STEPS)}")
    print("RESULT " + json.dumps(out), flush=True)


# --------------------------------------------------------------------------- driver


def _command(name: str, args: argparse.Namespace) -> list[str]:
    py = sys.executable
    work, lang = args.work_dir, args.work_dir / "lang_bpe_500"
    if name == "prepare_lang":
        return [
            py, "-m", "hourglass_w2v2.bin.prepare_lang", "--unit", "bpe", "--vocab-size",
            str(args.vocab_size), "--text", str(work / "transcripts.txt"),
            "--words-text", str(work / "words_by_rank.txt"), "--lang-dir", str(lang),
        ]  # fmt: skip
    if name == "compile_graphs":
        return [
            py, "-m", "hourglass_w2v2.bin.compile_graphs", "--lang-dir", str(lang),
            "--arpa", str(work / "G_3_gram.arpa"),
        ]  # fmt: skip
    child = [py, os.path.abspath(__file__), "--child", name]
    for key in ("work_dir", "scale", "fourgram_scale", "num_words", "num_transcripts", "seed",
                "num_utts", "beam", "max_active", "lm_scale", "confusion"):  # fmt: skip
        child += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    return child


def _limit_memory(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


class RssSampler(threading.Thread):
    """Polls a process's resident set size; :meth:`take` returns the peak since the last call."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak_kb = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            self.sample()

    def sample(self) -> None:
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        m = re.search(r"VmRSS:\s+(\d+)", text)
        if m:
            with self.lock:
                self.peak_kb = max(self.peak_kb, int(m.group(1)))

    def take(self) -> int:
        self.sample()  # phases shorter than the period get their end value
        with self.lock:
            peak, self.peak_kb = self.peak_kb, 0
        return peak


def _phase_name(line: str) -> str | None:
    """Short name of the work a child's INFO log line says has just finished."""
    if " INFO " not in line:
        return None
    msg = line.split(" INFO ", 1)[1].strip()
    msg = re.sub(r"^\[[^\]]*\]\s*", "", msg)  # a "[file.py:line]" tag of the log format
    msg = re.sub(r"/\S+/", "", msg)  # paths -> file names
    return re.sub(r" in [\d.]+ s:.*| \(.*\)$", "", msg)


def run_step(name: str, args: argparse.Namespace, log) -> dict:
    """Run one step in a child process: wall time, peak RSS (``wait4``), results, phases.

    Phases are the spans between the child's INFO log lines (``compile_graphs`` logs one per
    graph), each with its wall time and the peak of the RSS polled every 0.5 s.
    """
    log.write(f"=== {name}: {' '.join(_command(name, args))}\n")
    log.flush()
    start = last = time.perf_counter()
    limit = int(args.max_memory_gb * 1024**3)
    proc = subprocess.Popen(
        _command(name, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=(lambda: _limit_memory(limit)) if args.max_memory_gb > 0 else None,
    )
    sampler = RssSampler(proc.pid)
    sampler.start()
    output, phases = [], []
    assert proc.stdout is not None
    for line in proc.stdout:
        output.append(line)
        log.write(line)
        log.flush()
        phase = _phase_name(line)
        if phase is not None:
            now = time.perf_counter()
            phases.append({"phase": phase, "wall_s": round(now - last, 1), "rss_mb": 0})
            phases[-1]["rss_mb"] = sampler.take() // 1024
            last = now
    _, status, usage = os.wait4(proc.pid, 0)
    sampler.stopped.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"step {name} failed with exit status {proc.returncode} after {wall:.0f} s; "
            f"see {args.log}"
        )
    result = {"step": name, "wall_s": round(wall, 1), "peak_rss_mb": usage.ru_maxrss // 1024}
    if name == "compile_graphs":
        result["phases"] = phases
    text = "".join(output)
    for line in output:
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    for graph in ("LG", "HLG", "HL"):
        m = re.search(
            rf"\b{graph}: determinized and minimized in ([\d.]+) s: (\d+) states, (\d+) arcs", text
        )
        if m:
            result[f"{graph}_det_min_s"] = float(m.group(1))
            result[f"{graph}_states"] = int(m.group(2))
            result[f"{graph}_arcs"] = int(m.group(3))
    return result


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1024**2:.1f}" if path.is_file() else "-"


def describe(result: dict, args: argparse.Namespace) -> str:
    """The 'made' column of one step."""
    work, lang = args.work_dir, args.work_dir / "lang_bpe_500"
    name = result["step"]
    if name == "words":
        return f"{result['words']:,} words, {result['transcripts']:,} transcripts"
    if name == "prepare_lang":
        lines = (lang / "lexicon.txt").read_text(encoding="utf-8").splitlines()
        units = np.mean([len(line.split()) - 1 for line in lines])
        return f"BPE-{args.vocab_size}, lexicon {len(lines):,} entries, {units:.2f} units/word"
    if name in ("arpa3", "arpa4"):
        counts = " / ".join(f"{c:,}" for c in result["ngram_counts"])
        return f"n-grams {counts}; ARPA {result['arpa_bytes'] / 1024**2:.0f} MB"
    if name == "compile_graphs":
        parts = [f"G.fst.txt {_mb(work / 'G_3_gram.fst.txt')} MB"]
        for g in ("LG", "HLG"):
            if f"{g}_arcs" in result:
                parts.append(
                    f"{g} {result[f'{g}_states']:,} states / {result[f'{g}_arcs']:,} arcs "
                    f"(det+min {result[f'{g}_det_min_s']:.0f} s)"
                )
        parts.append(f"HL.fst {_mb(lang / 'HL.fst')} MB, HLG.fst {_mb(lang / 'HLG.fst')} MB")
        return "; ".join(parts)
    if name == "search":
        return (
            f"HLG load {result['graph_load_s']} s, +{result['graph_rss_mb']} MB RSS; "
            f"{result['utterances']} utts / {result['audio_s']} s audio, decode "
            f"{result['decode_s']} s, **RTF {result['rtf']}**, WER {result['wer']}% "
            f"(beam {result['beam']}, max-active {result['max_active']}, "
            f"LM scale {result['lm_scale']})"
        )
    if name == "rescore_lm":
        return (
            f"kenlm load {result['load_s']} s, +{result['lm_rss_mb']} MB RSS; "
            f"{result['score_ms_per_sentence']} ms per sentence"
        )
    return ""


def get_parser() -> argparse.ArgumentParser:
    """Command-line options (sizes, search settings, steps, memory cap)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/graph_scale"))
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the official sizes")
    p.add_argument(
        "--fourgram-scale", type=float, default=None, help="size of the 4-gram (default --scale)"
    )
    p.add_argument("--num-words", type=int, default=None, help="default 200,000 x --scale")
    p.add_argument(
        "--num-transcripts", type=int, default=None, help="BPE training sentences (100k x scale)"
    )
    p.add_argument("--vocab-size", type=int, default=500, help="BPE units")
    p.add_argument("--num-utts", type=int, default=20, help="10 s utterances to decode")
    p.add_argument("--beam", type=float, default=16.0)
    p.add_argument("--max-active", type=int, default=1000)
    p.add_argument("--lm-scale", type=float, default=1.0)
    p.add_argument("--confusion", type=float, default=0.3, help="share of wrong unit spikes")
    p.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    p.add_argument(
        "--max-memory-gb", type=float, default=16.0, help="address-space cap (RLIMIT_AS) per step"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log", type=Path, default=None, help="child output (default work dir)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the chosen steps one process each and print one table row per step and phase."""
    args = get_parser().parse_args(argv)
    if args.fourgram_scale is None:
        args.fourgram_scale = args.scale
    if args.num_words is None:
        args.num_words = max(500, round(200_000 * args.scale))
    if args.num_transcripts is None:
        args.num_transcripts = max(2000, round(100_000 * args.scale))
    if args.child is not None:
        run_child_step(args)
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.log = args.log or args.work_dir / "graph_scale.log"
    print(
        f"scale {args.scale} (4-gram {args.fourgram_scale}), {args.num_words:,} words, "
        f"BPE-{args.vocab_size}, work dir {args.work_dir}, log {args.log}",
        flush=True,
    )
    print("| step | wall (s) | peak RSS (MB) | made |", flush=True)
    print("|---|---|---|---|", flush=True)
    results = []
    with open(args.log, "a", encoding="utf-8") as log:
        for name in STEPS:
            if name not in args.steps:
                continue
            result = run_step(name, args, log)
            results.append(result)
            print(
                f"| {name} | {result['wall_s']:.1f} | {result['peak_rss_mb']:,} | "
                f"{describe(result, args)} |",
                flush=True,
            )
            for phase in result.get("phases", []):
                print(
                    f"| ... {phase['phase']} | {phase['wall_s']:.1f} | {phase['rss_mb']:,} | |",
                    flush=True,
                )
    (args.work_dir / "graph_scale.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
