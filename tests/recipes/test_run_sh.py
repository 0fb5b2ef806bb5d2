"""The recipes' run.sh: which command each stage runs, with which options.

A stand-in ``python`` first on PATH records every call's arguments instead of training, so the
whole script runs in a fraction of a second and each test reads the exact command lines.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = ["synth", "librispeech"]
DEFAULT_CONFIGS = {
    "synth": ("conf/pretrain_tiny_hourglass.yaml", "conf/finetune_tiny_10min.yaml"),
    "librispeech": ("conf/pretrain_base_hourglass.yaml", "conf/finetune_base_10min.yaml"),
}
FAKE_PYTHON = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$CALLS/$(date +%s%N)"
for arg in "$@"; do
  if [ "$arg" = --check-config ] && [ -n "${FAIL_CHECK:-}" ]; then
    echo "error: $FAIL_CHECK" >&2
    exit 2
  fi
done
"""


def run_sh(work: Path, *args: str, checks: bool = False, fail_check: str = ""
           ) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run ./run.sh ARGS in ``work``; return the process and each python call's argv, without
    the ``--check-config`` calls before each training stage unless ``checks``. With
    ``fail_check`` those calls fail with that message."""
    calls = work / "calls"
    calls.mkdir(exist_ok=True)
    for old in calls.iterdir():
        old.unlink()
    env = dict(os.environ, PATH=f"{work / 'bin'}:{os.environ['PATH']}", CALLS=str(calls),
               FAIL_CHECK=fail_check)
    out = subprocess.run(["./run.sh", *args], cwd=work, env=env, capture_output=True, text=True,
                         timeout=30)
    argvs = [p.read_text().splitlines() for p in sorted(calls.iterdir())]
    return out, [a for a in argvs if checks or "--check-config" not in a]


@pytest.fixture(params=RECIPES)
def work(request, tmp_path: Path) -> Path:
    """A scratch folder of one recipe (run.sh, conf, local, utils) with the stand-in python."""
    recipe = request.param
    work = tmp_path / "SSL"
    work.mkdir()
    for name in ("run.sh", "conf"):
        (work / name).symlink_to(REPO / "egs" / recipe / "SSL" / name)
    for name in ("local", "utils"):
        (work / name).symlink_to(REPO / name)
    (work / "bin").mkdir()
    (work / "bin/python").write_text(FAKE_PYTHON)
    (work / "bin/python").chmod(0o755)
    return work


def recipe_of(work: Path) -> str:
    """The recipe whose run.sh ``work`` links (egs/<recipe>/SSL/run.sh)."""
    return (work / "run.sh").resolve().parts[-3]


def make_checkpoints(exp: Path, names: list[str]) -> None:
    (exp / "checkpoints").mkdir(parents=True)
    for name in names:
        (exp / "checkpoints" / name).write_bytes(b"")


def value_after(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


def test_stage_2_picks_the_newest_checkpoint_in_an_exp_dir_with_hyphens(work):
    make_checkpoints(work / "exp/my-run", ["ckpt-9.pt", "ckpt-150.pt", "ckpt-20.pt"])
    out, calls = run_sh(work, "--stage", "2", "--stop-stage", "2", "--init", "exp/my-run",
                        "--exp-dir", "exp/ft-10min")
    assert out.returncode == 0, out.stderr
    [argv] = calls
    assert value_after(argv, "--init") == "exp/my-run/checkpoints/ckpt-150.pt"
    assert argv[:4] == ["-m", "torch.distributed.run", "--nproc-per-node",
                        "1" if recipe_of(work) == "synth" else "8"]
    assert value_after(argv, "--exp-dir") == "exp/ft-10min"
    assert argv[argv.index("-m", 1) + 1] == "hourglass_w2v2.bin.finetune"


def test_each_training_stage_checks_its_config_before_torchrun(work):
    from hourglass_w2v2.bin import finetune
    from hourglass_w2v2.training.cli import base_parser

    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch",
                        "--exp-dir", "exp/x", "--restart-from-scratch", "true", "optim.lr=1e-4",
                        "trainer.seed=2", checks=True)
    assert out.returncode == 0, out.stderr
    check_pre, pre, check_ft, ft = calls
    parsers = (base_parser("pretrain"), finetune.build_parser())
    for check, train, parser in ((check_pre, pre, parsers[0]), (check_ft, ft, parsers[1])):
        launched = train[train.index("-m", 1):]  # what torchrun starts: -m MODULE ARGS...
        assert check == launched[:2] + ["--check-config"] + launched[2:]
        # both parse with the real command line, overrides (the recipe's, then ours) last
        checked, trained = parser.parse_args(check[2:]), parser.parse_args(launched[2:])
        assert checked.check_config and not trained.check_config
        assert checked.overrides == trained.overrides
        assert trained.overrides[-2:] == ["optim.lr=1e-4", "trainer.seed=2"]
        assert trained.restart_from_scratch


def test_a_failed_check_stops_run_sh_before_torchrun(work):
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch",
                        "model.layerdrop=1", checks=True,
                        fail_check="config key 'model.layerdrop' = 1.0 is out of range")
    assert out.returncode != 0
    assert "error: config key 'model.layerdrop' = 1.0 is out of range" in out.stderr
    assert len(calls) == 1 and "--check-config" in calls[0]  # no torchrun, no stage 2
    assert "Traceback" not in out.stderr


def test_newest_checkpoint_skips_set_aside_and_temporary_files(work):
    make_checkpoints(work / "exp/a-b", ["ckpt-1000.pt.corrupt", "ckpt-2000.pt.tmp", "ckpt-99.pt",
                                        "ckpt-best.pt", "ckpt-100.pt"])
    out, [argv] = run_sh(work, "--stage", "2", "--stop-stage", "2", "--init", "exp/a-b")
    assert out.returncode == 0, out.stderr
    assert value_after(argv, "--init") == "exp/a-b/checkpoints/ckpt-100.pt"


def test_exp_dir_without_checkpoints_stops_stage_2_naming_it(work):
    (work / "exp/pre-train/checkpoints").mkdir(parents=True)
    out, calls = run_sh(work, "--stage", "2", "--stop-stage", "3", "--init", "exp/pre-train")
    assert out.returncode == 1
    assert "run.sh: no checkpoint ckpt-<update>.pt in exp/pre-train/checkpoints" in out.stderr
    assert calls == []


def test_stage_2_passes_an_hf_model_dir_as_it_is(work):
    # save_pretrained's layout: config.json + weights, no checkpoints/ folder
    hf = work / "models/wav2vec2-base"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"")
    out, [argv] = run_sh(work, "--stage", "2", "--stop-stage", "2",
                         "--init", "models/wav2vec2-base")
    assert out.returncode == 0, out.stderr
    assert value_after(argv, "--init") == "models/wav2vec2-base"


def test_train_config_reaches_each_trainer_and_defaults_per_stage(work):
    pretrain, finetune = DEFAULT_CONFIGS[recipe_of(work)]
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch")
    assert out.returncode == 0, out.stderr
    assert [value_after(argv, "--config") for argv in calls] == [pretrain, finetune]
    assert "hourglass_w2v2.bin.pretrain" in calls[0] and "--init-from-scratch" in calls[1]
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "1",
                        "--train-config", "conf/mine.yaml", "trainer.max_updates=7")
    assert out.returncode == 0, out.stderr
    assert value_after(calls[0], "--config") == "conf/mine.yaml"
    assert calls[0][-1] == "trainer.max_updates=7"


@pytest.mark.parametrize("args", [["--config", "conf/x.yaml"], ["--config=conf/x.yml"]])
def test_yaml_given_as_config_is_refused_with_the_option_to_use(work, args):
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "1", *args)
    assert out.returncode == 1
    value = args[-1].split("=", 1)[-1]
    assert (f"run.sh: --config {value}: --config sources a shell file of option defaults "
            f"(Kaldi's convention); give the YAML experiment config as --train-config {value}"
            ) in out.stderr
    assert calls == []


def test_config_file_of_shell_options_still_works(work):
    (work / "my_opts.sh").write_text("stage=3\nstop_stage=3\nmethods=ctc-greedy\n")
    out, [argv] = run_sh(work, "--config", "my_opts.sh")
    assert out.returncode == 0, out.stderr
    assert "hourglass_w2v2.bin.decode" in argv and value_after(argv, "--method") == "ctc-greedy"


def test_restart_from_scratch_is_passed_to_both_trainers_only_when_asked(work):
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch")
    assert out.returncode == 0 and all("--restart-from-scratch" not in a for a in calls)
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch",
                        "--restart-from-scratch", "true")
    assert out.returncode == 0, out.stderr
    assert len(calls) == 2 and all("--restart-from-scratch" in a for a in calls)
    out, _ = run_sh(work, "--stage", "1", "--stop-stage", "1", "--restart-from-scratch", "yes")
    assert out.returncode == 1
    assert "option --restart-from-scratch expects true or false, got 'yes'" in out.stderr


def test_decode_opts_pass_extra_test_sets_and_skip_bad(work):
    out, [argv] = run_sh(work, "--stage", "3", "--stop-stage", "3", "--exp-dir", "exp/ft",
                         "--test-sets", "test-clean",
                         "--decode-opts", "--cuts mine=data/mine.jsonl.gz --skip-bad")
    assert out.returncode == 0, out.stderr
    assert argv[:2] == ["-m", "hourglass_w2v2.bin.decode"]
    assert value_after(argv, "--test-sets") == "test-clean"
    assert argv[-3:] == ["--cuts", "mine=data/mine.jsonl.gz", "--skip-bad"]


def test_results_opts_pass_strict_over_every_exp_dir(work):
    for name in ("a", "b-c"):
        (work / "exp" / name).mkdir(parents=True)
    out, [argv] = run_sh(work, "--stage", "4", "--results-opts", "--strict")
    assert out.returncode == 0, out.stderr
    assert argv == ["-m", "hourglass_w2v2.bin.results", "exp/a/", "exp/b-c/", "--out",
                    "exp/results.md", "--csv", "exp/results.csv", "--strict"]


def test_results_without_exp_dirs_says_what_to_run(work):
    out, calls = run_sh(work, "--stage", "4")
    assert out.returncode == 1
    assert "no experiment directory under exp/ to tabulate; run stages 1-3 first" in out.stderr
    assert calls == []


def test_help_names_the_options_recipe_users_need(work):
    out, calls = run_sh(work, "--help")
    assert out.returncode == 0 and calls == []
    for text in ("--train-config", "--restart-from-scratch", "--cuts", "--skip-bad", "--strict",
                 "--decode-opts", "--results-opts"):
        assert text in out.stdout


def test_run_sh_holds_its_stages(work):
    """Each stage is read in run.sh itself, as in prepare.sh, not in a sourced file."""
    text = (work / "run.sh").read_text()
    for n in (1, 2, 3, 4):
        assert f"if [ $stage -le {n} ] && [ $stop_stage -ge {n} ]; then" in text
        assert f'log "Stage {n}: ' in text
    assert "local/" not in text.split("set -euo pipefail", 1)[1]


def test_world_size_zero_is_refused(work):
    out, calls = run_sh(work, "--stage", "1", "--world-size", "0")
    assert out.returncode == 1 and calls == []
    assert "run.sh: --world-size must be at least 1, got 0" in out.stderr


def test_stage_2_without_init_says_what_to_give(work):
    out, calls = run_sh(work, "--stage", "2", "--stop-stage", "2")
    assert out.returncode == 1 and calls == []
    assert "run.sh: stage 2 needs --init (a checkpoint, a pretraining exp dir or scratch)" in (
        out.stderr)


def test_avg_and_a_checkpoint_file_reach_the_fine_tuning_trainer(work):
    out, [argv] = run_sh(work, "--stage", "2", "--stop-stage", "2", "--avg", "3",
                         "--init", "/models/w2v-base.pt", "--restart-from-scratch", "true")
    assert out.returncode == 0, out.stderr
    i = argv.index("--init")
    assert argv[i:i + 5] == ["--init", "/models/w2v-base.pt", "--avg", "3",
                             "--restart-from-scratch"]
    assert argv[-3:] == ["data.manifest_dir=data/manifests", f"data.corpus={recipe_of(work)}",
                         "ctc.lang_dir=data/lang_char"]


def launch_options(argv: list[str]) -> list[str]:
    """torchrun's options after ``--nproc-per-node N``, up to the trainer module."""
    return argv[4:argv.index("-m", 1)]


def test_one_node_runs_torchrun_standalone_and_restarts_only_when_asked(work):
    out, [argv] = run_sh(work, "--stage", "1", "--stop-stage", "1")
    assert out.returncode == 0, out.stderr
    assert launch_options(argv) == ["--standalone"]
    out, [argv] = run_sh(work, "--stage", "1", "--stop-stage", "1", "--world-size", "2",
                         "--max-restarts", "3")
    assert out.returncode == 0, out.stderr
    assert argv[:4] == ["-m", "torch.distributed.run", "--nproc-per-node", "2"]
    assert launch_options(argv) == ["--standalone", "--max-restarts", "3"]


@pytest.mark.parametrize("node_rank, is_host", [("0", "true"), ("1", "false")])
def test_nnodes_node_rank_and_endpoint_reach_torchrun_in_both_training_stages(
        work, node_rank, is_host):
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch",
                        "--nnodes", "2", "--node-rank", node_rank,
                        "--rdzv-endpoint", "node0.cluster:29400", "--max-restarts", "2",
                        "--torchrun-opts", "--rdzv-id 417")
    assert out.returncode == 0, out.stderr
    assert len(calls) == 2
    for argv in calls:
        assert launch_options(argv) == [
            "--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", "node0.cluster:29400",
            "--rdzv-conf", f"is_host={is_host}", "--max-restarts", "2", "--rdzv-id", "417"]
    assert "Stage 1: pretraining" in out.stderr and "on 2 node(s) x" in out.stderr


def test_torchrun_gets_an_unshared_rendezvous_store(work):
    """A store shared with the workers outlives them and can hang a restart (see run.sh)."""
    (work / "bin/python").write_text(
        '#!/usr/bin/env bash\n'
        '[ "$2" = torch.distributed.run ] || exit 0\n'
        'echo "$TORCH_DISABLE_SHARE_RDZV_TCP_STORE" > "$CALLS/$(date +%s%N)"\n')
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch")
    assert out.returncode == 0, out.stderr
    assert calls == [["1"], ["1"]]


@pytest.mark.parametrize("args, message", [
    (["--nnodes", "2"], "run.sh: --nnodes 2 needs --rdzv-endpoint HOST:PORT (node 0's address "
     "and a free port, the same on every node), got ''"),
    (["--nnodes", "2", "--rdzv-endpoint", "node0"], "needs --rdzv-endpoint HOST:PORT"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"],
     "run.sh: --node-rank must be a whole number below --nnodes (2), got '2'"),
    (["--node-rank", "-1"], "run.sh: --node-rank must be a whole number below --nnodes (1)"),
    (["--nnodes", "0"], "run.sh: --nnodes must be at least 1, got 0"),
    (["--max-restarts", "x"], "run.sh: --max-restarts must be a whole number, got 'x'"),
    (["--rdzv-endpoint", "h:1"], "run.sh: --rdzv-endpoint h:1 is for several nodes; give "
     "--nnodes too"),
    (["--torchrun-opts", "--nnodes 2 --rdzv-backend c10d"], "run.sh: --torchrun-opts "
     "'--nnodes 2 --rdzv-backend c10d': give --nnodes as run.sh's own option (--nnodes, "
     "--node-rank, --rdzv-endpoint, --max-restarts), which set torchrun's rendezvous"),
    (["--torchrun-opts", "--max_restarts=2"], "give --max_restarts as run.sh's own option"),
])
def test_bad_node_options_stop_before_any_stage(work, args, message):
    out, calls = run_sh(work, "--stage", "1", "--stop-stage", "2", "--init", "scratch", *args)
    assert out.returncode == 1 and calls == []
    assert message in out.stderr


FAKE_SRUN = """#!/usr/bin/env bash
# runs the command once per node, as SLURM does on each, with that node's SLURM_NODEID
while [[ $1 == --* ]]; do shift; done
for ((i = 0; i < SLURM_JOB_NUM_NODES; i++)); do SLURM_NODEID=$i "$@" || exit 1; done
"""


# a long host list: the script must read it whole, not close the pipe after the first line
@pytest.mark.parametrize("more_hosts", [0, 200_000])
def test_slurm_script_runs_run_sh_on_each_node_with_its_rank_and_the_first_node_as_host(
    work, more_hosts
):
    (work / "bin/srun").write_text(FAKE_SRUN)
    (work / "bin/scontrol").write_text(
        "#!/usr/bin/env bash\nprintf 'gpu-a17\\ngpu-a18\\n'\n"
        + (f"seq -f 'gpu-b%g' 1 {more_hosts}\n" if more_hosts else "")
    )
    for name in ("srun", "scontrol"):
        (work / "bin" / name).chmod(0o755)
    slurm = {"SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu-a[17-18]",
             "SLURM_JOB_ID": "4711", "SLURM_GPUS_ON_NODE": "4", "SLURM_SUBMIT_DIR": str(work)}
    calls = work / "calls"
    calls.mkdir()
    env = dict(os.environ, PATH=f"{work / 'bin'}:{os.environ['PATH']}", CALLS=str(calls), **slurm)
    out = subprocess.run(["utils/slurm_train.sh", "--stage", "1", "--stop-stage", "1",
                          "--exp-dir", "exp/p", "trainer.max_updates=9"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    argvs = [p.read_text().splitlines() for p in sorted(calls.iterdir())]
    argvs = [argv for argv in argvs if "--check-config" not in argv]
    assert [argv[:4] for argv in argvs] == [["-m", "torch.distributed.run", "--nproc-per-node",
                                             "4"]] * 2
    for argv, is_host in zip(argvs, ("true", "false"), strict=True):
        assert launch_options(argv) == [
            "--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", "gpu-a17:29400",
            "--rdzv-conf", f"is_host={is_host}", "--max-restarts", "3", "--rdzv-id", "4711"]
        assert value_after(argv, "--exp-dir") == "exp/p" and argv[-1] == "trainer.max_updates=9"
