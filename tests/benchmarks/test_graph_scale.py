"""benchmarks/graph_scale.py at a tiny size: the generated LMs are well-formed, every step runs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from hourglass_w2v2.lang.lm import read_arpa

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "graph_scale.py"
_spec = importlib.util.spec_from_file_location("graph_scale", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_generated_ngrams_are_closed_under_prefix_and_suffix(tmp_path):
    rng = np.random.default_rng(1)
    vocab = [*bench.SPECIALS, *bench.make_words(rng, 300)]
    counts = (len(vocab), 2000, 1500, 800)
    path = tmp_path / "lm.arpa"
    bench.write_arpa(bench.NgramSet(rng, len(vocab), counts), vocab, path)
    ngrams = read_arpa(path)
    assert [len(t) for t in ngrams] == list(counts)
    assert len(set(vocab)) == len(vocab)
    for order in range(2, 5):
        for words in ngrams[order - 1]:
            assert words[:-1] in ngrams[order - 2], words
            assert words[1:] in ngrams[order - 2], words
            assert "<s>" not in words[1:] and "</s>" not in words[:-1], words
        # the header count is the number of distinct n-grams written
        assert len(ngrams[order - 1]) == counts[order - 1]


def test_peaky_log_probs_spell_the_units():
    rng = np.random.default_rng(0)
    units = [5, 5, 9, 7]
    lp = bench.peaky_log_probs(rng, units, 50, 20, confusion=0.0)
    assert lp.shape == (50, 20)
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-5)
    best = lp.argmax(axis=1)
    collapsed = [int(u) for i, u in enumerate(best) if u != 0 and (i == 0 or best[i - 1] != u)]
    assert collapsed == units  # a blank separates the repeated 5s


def test_script_runs_every_step_at_a_tiny_size(tmp_path):
    work = tmp_path / "work"
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--scale", "0.003", "--fourgram-scale", "0.0003",
         "--num-utts", "3", "--work-dir", str(work), "--max-memory-gb", "8"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    steps = [r.split("|")[1].strip() for r in rows[1:]]
    assert [s for s in steps if not s.startswith("...")] == list(bench.STEPS)
    results = {r["step"]: r for r in json.loads((work / "graph_scale.json").read_text())}
    assert (work / "lang_bpe_500" / "HLG.fst").stat().st_size > 0
    assert results["arpa3"]["ngram_counts"] == [603, 4905, 5895]
    assert results["compile_graphs"]["HLG_arcs"] > results["compile_graphs"]["LG_arcs"] > 0
    phases = {p["phase"]: p for p in results["compile_graphs"]["phases"]}
    assert phases["HLG: determinized and minimized"]["rss_mb"] > 0
    assert phases["wrote HLG.fst"]["wall_s"] >= 0
    search = results["search"]
    assert search["utterances"] == 3 and 7 < search["audio_s"] / 3 < 12
    assert search["wer"] < 60  # the search follows the posteriors' words
    assert results["rescore_lm"]["finite"]
    assert all(r["peak_rss_mb"] > 0 and r["wall_s"] > 0 for r in results.values())
