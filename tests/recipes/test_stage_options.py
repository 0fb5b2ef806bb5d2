"""The recipes' prepare.sh / run.sh refuse non-integer stage numbers instead of skipping every
stage and exiting 0 (bash's "integer expression expected" is not an error under set -e)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_script(tmp_path: Path, recipe: str, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run egs/<recipe>/SSL/<script> ARGS in a scratch copy of the recipe folder."""
    work = tmp_path / "SSL"
    work.mkdir()
    (work / script).symlink_to(REPO / "egs" / recipe / "SSL" / script)
    for name in ("local", "utils", "conf"):
        (work / name).symlink_to(REPO / "egs" / recipe / "SSL" / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([f"./{script}", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("recipe", ["librispeech", "synth"])
@pytest.mark.parametrize("script", ["prepare.sh", "run.sh"])
@pytest.mark.parametrize("args, shown", [(["--stage", "abc"], "--stage abc"),
                                         (["--stop-stage", "1.5"], "--stop-stage 1.5")])
def test_non_integer_stage_exits_non_zero_naming_the_option(tmp_path, recipe, script, args,
                                                             shown):
    out = run_script(tmp_path, recipe, script, *args)
    option, value = shown.split()
    assert out.returncode == 1, out.stderr
    assert f"{script}: {option} must be an integer, got '{value}'" in out.stderr
    assert "integer expression expected" not in out.stderr
    assert "Stage" not in out.stderr and not (tmp_path / "SSL/data").exists()


@pytest.mark.parametrize("option, value", [("--avg", "three"), ("--world-size", "2.5")])
def test_run_sh_non_integer_counts_fail(tmp_path, option, value):
    out = run_script(tmp_path, "synth", "run.sh", "--stage", "4", "--stop-stage", "4",
                     option, value)
    assert out.returncode == 1, out.stderr
    assert f"run.sh: {option} must be a whole number, got '{value}'" in out.stderr
    assert "Stage 4" not in out.stderr
