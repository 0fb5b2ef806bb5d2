"""`make demo`'s pipeline (egs/synth/SSL/demo.sh) end to end (slow).

`make demo-quick` (`demo.sh --quick true`: the tiny corpus, a few dozen updates) trains the
models too briefly for the WERs to mean anything; what is checked is that every stage chains
into the next through run.sh's stages, that the results table says exactly what the decode
directories' summary files say, and that the closing note calls it a pipeline check.
`make demo` itself (~40 min) must show what the project claims: the pretrained model beats the
from-scratch baseline on test-clean by >= 30% relative on 1best-HLG WER and >= 20% on greedy
CER, and the baseline is a recogniser (greedy CER below 90%), not an all-blank model. Its
fine-tuned model must then work outside the recipe: exported to ONNX it decodes test-clean as
PyTorch does (bin.export --verify's tolerances), and bin.transcribe reads a folder of mixed
formats.
"""

import ast
import os
import shutil
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
    env.pop("OMP_NUM_THREADS", None)  # conftest's 1 thread is for small tensors, not the demo
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
    # run again: every stage is skipped as done, and the estimates still come from the
    # reference times (skipped stages say nothing about this machine's speed)
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    again = subprocess.run(
        ["./demo.sh", "--workdir", ".", "--quick", "true"],
        cwd=exp.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    stages = [line for line in again.stderr.splitlines() if "/3] " in line]
    assert len(stages) == 3, again.stderr[-3000:]
    assert "prepare: done already (prepare.sh's stages are done); about 1 min left" in stages[0]
    assert "[2/3] pretraining: done already (exp/demo_pretrain_tiny is at update 20)" in stages[1]
    assert "side by side: about 1 min; about 1 min left of the demo" in stages[2]
    # another fine-tuning seed: its own exp dirs and table, from the same pretraining; before,
    # the finished seed-42 dirs were resumed and their table reported as the new seed's
    ckpt = exp / "demo_pretrain_tiny" / "checkpoints" / "ckpt-20.pt"
    mtime = ckpt.stat().st_mtime_ns
    seed = subprocess.run(
        ["./demo.sh", "--workdir", ".", "--quick", "true", "--finetune-seed", "7"],
        cwd=exp.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    assert seed.returncode == 0, seed.stderr[-3000:]
    assert ckpt.stat().st_mtime_ns == mtime  # the pretraining was not redone
    for name in EXPS:
        config = (exp / f"{name}_tiny_seed7" / "config.yaml").read_text()
        assert "\n  seed: 7\n" in config
        assert "\n  seed: 42\n" in (exp / f"{name}_tiny" / "config.yaml").read_text()
    _check_table(exp, "_tiny_seed7", 20)


def test_demo_quick_refuses_another_size(tmp_path):
    demo = os.path.join(REPO, "egs", "synth", "SSL", "demo.sh")
    out = subprocess.run(
        [demo, "--quick", "true", "--size", "default"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "--quick true runs the tiny corpus; drop --size default" in out.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One `make demo` run (./demo.sh with its defaults), shared by the tests below."""
    return _run_demo(tmp_path_factory.mktemp("demo"))


@pytest.mark.slow
@pytest.mark.timeout(4800)  # ~40 min on 2 idle cores
def test_demo_shows_pretraining_paying_off(demo):
    exp, log = demo
    rows, col = _check_table(exp, "", 5000)

    def best(name, method, metric):
        return min(float(r[col[f"test-clean {metric}"]]) for r in rows if r[:2] == [name, method])

    pre, scratch = EXPS
    hlg = (best(pre, "1best-HLG", "WER"), best(scratch, "1best-HLG", "WER"))
    greedy = (best(pre, "ctc-greedy", "CER"), best(scratch, "ctc-greedy", "CER"))
    assert hlg[0] <= 0.7 * hlg[1], hlg
    assert greedy[0] <= 0.8 * greedy[1], greedy
    assert greedy[1] < 90.0  # the baseline left the all-blank stage: a fair comparison
    assert "side by side" in log and "pretrained: finished" in log
    closing = log.strip().splitlines()[-1]
    assert "Pretraining paid off: on test-clean, demo_ft_10min_pretrained makes" in closing


def _python(*args, cwd):
    out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)
    return out


@pytest.mark.slow
@pytest.mark.timeout(4800)
def test_the_demo_model_is_exported_faithfully_and_transcribes_files(demo, tmp_path):
    """The trained model of `make demo` outside the recipe: its ONNX files decode test-clean as
    PyTorch does (fp32 log-probs within 1e-4, int8 WERs at most 1.0 above fp32's), and
    bin.transcribe reads a folder of mixed formats. The demo trains on raw audio, so sherpa-onnx
    (which normalises its input) is only required to come with the caveat in the README."""
    exp, _ = demo
    work, name = exp.parent, EXPS[0]
    cuts = "data/manifests/synth_cuts_test-clean.jsonl.gz"
    args = ["--exp-dir", f"exp/{name}", "--format", "onnx", "--out", str(tmp_path / "onnx")]
    out = _python("-m", "hourglass_w2v2.bin.export", *args, "--int8", "--verify", cuts, cwd=work)
    wers = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] in ("PyTorch", "onnxruntime fp32", "onnxruntime int8"):
            wers[cells[0], cells[1]] = float(cells[2])
    assert len(wers) == 6, out.stdout[-3000:] + out.stderr[-3000:]
    problems = out.stderr.split("export: the export is not faithful:", 1)[-1]
    assert "log-probs differ" not in problems and "onnxruntime int8" not in problems
    readme = (tmp_path / "onnx/README.md").read_text()
    assert "Note: the model was fine-tuned on raw audio" in readme
    # the PyTorch rows are bin.decode's own figures (its batches, its search)
    decoded = read_summary(exp / name / "decode/1best-HLG/wer-summary-test-clean.txt")
    assert wers["PyTorch", "HLG"] == pytest.approx(decoded["lm_scale_1"], abs=0.01)
    assert wers["onnxruntime fp32", "HLG"] == pytest.approx(decoded["lm_scale_1"], abs=0.2)
    assert wers["onnxruntime int8", "HLG"] - decoded["lm_scale_1"] <= 1.0

    # bin.transcribe on a folder: FLAC as recorded, 16 kHz WAV, 8 kHz stereo WAV, MP3
    from lhotse import CutSet

    test_cuts = list(CutSet.from_file(work / cuts))[:2]
    recogs = (exp / name / "decode/ctc-greedy/recogs-test-clean-greedy.txt").read_text()
    folder = tmp_path / "mine"
    folder.mkdir()
    expected = {}
    for i, cut in enumerate(test_cuts):
        src = cut.recording.sources[0].source
        hyp = next(
            line.split("hyp=", 1)[1]
            for line in recogs.splitlines()
            if line.startswith(f"{cut.id}:\thyp=")
        )
        expected[f"{cut.id}.flac"] = " ".join(ast.literal_eval(hyp))
        shutil.copy(src, folder / f"{cut.id}.flac")
        ffmpeg = ["ffmpeg", "-loglevel", "error", "-i", src]
        if i == 0:
            subprocess.run(
                [*ffmpeg, "-ar", "8000", "-ac", "2", folder / "a-8k-stereo.wav"], check=True
            )
            subprocess.run([*ffmpeg, folder / "a-16k.wav"], check=True)
            expected["a-16k.wav"] = expected[f"{cut.id}.flac"]
        else:
            subprocess.run([*ffmpeg, "-b:a", "64k", folder / "b.mp3"], check=True)
    out = _python(
        "-m", "hourglass_w2v2.bin.transcribe", "--exp-dir", f"exp/{name}", folder, cwd=work
    )
    assert out.returncode == 0, out.stderr[-3000:]
    texts = dict(line.split("\t", 1) for line in out.stdout.splitlines())
    assert sorted(os.path.basename(f) for f in texts) == sorted(os.listdir(folder))
    for path, text in texts.items():
        fname = os.path.basename(path)
        if fname in expected:  # lossless 16 kHz: bin.decode's greedy words exactly
            assert text == expected[fname], (fname, text, expected[fname])
        else:
            assert len(text.split()) >= 2, (fname, text)


@pytest.mark.parametrize("args, flag", [([], ""), (["SEED=2"], " --finetune-seed 2")])
def test_make_demo_seed_passes_the_fine_tuning_seed(args, flag):
    # under `make test` the inner make also prints the directories it enters and leaves
    out = subprocess.run(["make", "-n", "demo", *args], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    [line] = [line for line in out.stdout.splitlines() if "./demo.sh" in line]
    assert line.rstrip().endswith(f"&& ./demo.sh{flag}")
