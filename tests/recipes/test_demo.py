"""`make demo`'s pipeline (egs/synth/SSL/demo.sh) end to end (slow).

`make demo-quick` (`demo.sh --quick true`: the tiny corpus, a few dozen updates) trains the
models too briefly for the WERs to mean anything; what is checked is that every stage chains
into the next through run.sh's stages, that the results table says exactly what the decode
directories' summary files say, and that the closing note calls it a pipeline check.
`make demo` itself (~40 min; its two fine-tunings run side by side) must show what the project claims: the pretrained model beats the
from-scratch baseline on test-clean by >= 30% relative on 1best-HLG WER and >= 20% on greedy
CER, and the baseline is a recogniser (greedy CER below 90%), not an all-blank model.
"""

import os
import subprocess
import sys

import pytest

from hourglass_w2v2.scoring import read_summary

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPS = ("demo_ft_10min_pretrained", "demo_ft_10min_scratch")


def _run_demo(tmp_path, *args):
    work = tmp_path / "SSL"
    work.mkdir()
    for name in ("prepare.sh", "run.sh", "demo.sh", "conf"):
        (work / name).symlink_to(os.path.join(REPO, "egs", "synth", "SSL", name))
    for name in ("local", "utils"):
        (work / name).symlink_to(os.path.join(REPO, name))
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    out = subprocess.run(
        ["./demo.sh", "--workdir", ".", *args], cwd=work, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work / "exp", out.stderr


def _check_table(exp, suffix, pretrain_updates):
    """The table has one row per (experiment, method, key) and equals the summary files."""
    table = (exp / f"demo_results{suffix}.md").read_text().splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in table[2:] if line[:1] == "|"
    ]
    col = {name: i for i, name in enumerate(header)}
    seen = set()
    for name in (e + suffix for e in EXPS):
        decode = exp / name / "decode"
        for method in ("ctc-greedy", "1best-HLG"):
            for test in ("test-clean", "test-other"):
                wer = read_summary(decode / method / f"wer-summary-{test}.txt")
                cer = read_summary(decode / method / f"cer-summary-{test}.txt")
                for key, value in wer.items():
                    row = next(r for r in rows if r[:3] == [name, method, key])
                    assert float(row[col[f"{test} WER"]]) == pytest.approx(value, abs=0.01)
                    assert float(row[col[f"{test} CER"]]) == pytest.approx(cer[key], abs=0.01)
                    seen.add((name, method, key))
                assert (decode / method / f"recogs-{test}-{next(iter(wer))}.txt").is_file()
        assert any(r[0] == name and r[col["pretrain updates"]] for r in rows)
    assert len(seen) == len(rows)
    pretrained = next(r for r in rows if r[0] == EXPS[0] + suffix)
    assert pretrained[col["pretrain updates"]] == str(pretrain_updates)
    # the list under the table: pretrained vs the from-scratch baseline, from the same summaries
    pre_cer, base_cer = (
        read_summary(exp / (e + suffix) / "decode/ctc-greedy/cer-summary-test-clean.txt")["greedy"]
        for e in EXPS[:2]
    )
    rel = 100.0 * (pre_cer - base_cer) / base_cer
    assert (
        f"- {EXPS[0]}{suffix} vs {EXPS[1]}{suffix}, ctc-greedy, test-clean CER: {pre_cer:.2f} "
        f"(greedy) vs {base_cer:.2f} (greedy), {rel:+.1f}% relative"
    ) in table
    return rows, col


@pytest.mark.slow
def test_demo_quick_runs_the_pipeline_and_says_that_is_all_it_shows(tmp_path):
    exp, log = _run_demo(tmp_path, "--quick", "true")
    assert (exp / "demo_pretrain_tiny" / "checkpoints" / "ckpt-20.pt").is_file()
    for name in EXPS:
        assert (exp / f"{name}_tiny" / "checkpoints" / "ckpt-30.pt").is_file()
    rows, _ = _check_table(exp, "_tiny", 20)
    assert {r[2] for r in rows if r[1] == "1best-HLG"} == {"lm_scale_1"}  # one LM scale
    closing = log.strip().splitlines()[-1]
    assert "This was the pipeline check" in closing
    assert "say nothing about the method" in closing
    assert "'make demo'" in closing and "'make demo-large'" in closing


def test_demo_quick_refuses_another_size(tmp_path):
    demo = os.path.join(REPO, "egs", "synth", "SSL", "demo.sh")
    out = subprocess.run(
        [demo, "--quick", "true", "--size", "default"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "--quick true runs the tiny corpus; drop --size default" in out.stderr


@pytest.mark.slow
@pytest.mark.timeout(4800)  # ~40 min on 2 idle cores
def test_demo_shows_pretraining_paying_off(tmp_path):
    exp, log = _run_demo(tmp_path)
    rows, col = _check_table(exp, "", 5000)

    def best(name, method, metric):
        return min(float(r[col[f"test-clean {metric}"]]) for r in rows if r[:2] == [name, method])

    pre, scratch = EXPS
    hlg = (best(pre, "1best-HLG", "WER"), best(scratch, "1best-HLG", "WER"))
    greedy = (best(pre, "ctc-greedy", "CER"), best(scratch, "ctc-greedy", "CER"))
    assert hlg[0] <= 0.7 * hlg[1], hlg
    assert greedy[0] <= 0.8 * greedy[1], greedy
    assert greedy[1] < 90.0  # the baseline left the all-blank stage: a fair comparison
    closing = log.strip().splitlines()[-1]
    assert "Pretraining paid off: on test-clean, demo_ft_10min_pretrained makes" in closing
