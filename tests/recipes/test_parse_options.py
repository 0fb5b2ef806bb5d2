"""utils/parse_options.sh and utils/log.sh behave as Kaldi's / icefall's do."""

import re
import subprocess
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parents[2] / "utils"

SCRIPT = f"""#!/usr/bin/env bash
# Demo recipe.
#   demo.sh [--stage N] [--stop-stage M]
set -euo pipefail
stage=0
stop_stage=100
use_gpu=false
name=default
{{help}}
. {UTILS}/parse_options.sh
. {UTILS}/log.sh
echo "stage=$stage stop_stage=$stop_stage use_gpu=$use_gpu name=$name rest=$*"
log "hello from the demo"
"""


def run(tmp_path: Path, *args: str, help_message: str = "") -> subprocess.CompletedProcess:
    script = tmp_path / "demo.sh"
    script.write_text(SCRIPT.replace("{help}", help_message))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          cwd=tmp_path)


def test_options_set_variables_with_dashes_as_underscores(tmp_path):
    out = run(tmp_path, "--stop-stage", "3", "--stage=2", "--name", "a b", "x", "--y")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "stage=2 stop_stage=3 use_gpu=false name=a b rest=x --y"


def test_defaults_are_kept_without_options(tmp_path):
    out = run(tmp_path)
    assert out.stdout.splitlines()[0] == "stage=0 stop_stage=100 use_gpu=false name=default rest="


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stop_stag", "3"], "invalid option --stop_stag (no variable 'stop_stag'"),
        (["--stage"], "option --stage needs a value"),
        (["--use-gpu", "yes"], "option --use-gpu expects true or false, got 'yes'"),
        (["--config", "missing.conf"], "config file missing.conf not found"),
    ],
)
def test_bad_options_fail_with_a_message(tmp_path, args, message):
    out = run(tmp_path, *args)
    assert out.returncode == 1
    assert message in out.stderr
    assert out.stdout == ""  # the script body never ran


def test_boolean_option_accepts_true(tmp_path):
    assert "use_gpu=true" in run(tmp_path, "--use-gpu", "true").stdout


def test_config_file_is_sourced_and_later_options_override(tmp_path):
    (tmp_path / "my.conf").write_text("stage=4\nname=fromconf\n")
    out = run(tmp_path, "--config", "my.conf", "--name", "cli")
    assert out.stdout.splitlines()[0].startswith("stage=4 stop_stage=100 use_gpu=false name=cli")


def test_help_prints_help_message(tmp_path):
    out = run(tmp_path, "--stage", "1", "--help", help_message='help_message="Usage: demo.sh"')
    assert out.returncode == 0
    assert out.stdout == "Usage: demo.sh\n"


def test_help_without_help_message_prints_leading_comment(tmp_path):
    out = run(tmp_path, "-h")
    assert out.returncode == 0
    assert out.stdout == "Demo recipe.\n  demo.sh [--stage N] [--stop-stage M]\n"


def test_log_prints_time_script_line_and_function(tmp_path):
    out = run(tmp_path)
    line_no = SCRIPT.splitlines().index('log "hello from the demo"') + 1
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(demo\.sh:{line_no}:main\) hello from the demo\n",
        out.stderr)


@pytest.mark.parametrize(
    "args, shown",
    [
        (["--stage", "abc"], "--stage"),
        (["--stop-stage", "1.5"], "--stop-stage"),
        (["--stage="], "--stage"),
        (["--stage", "2", "--stop-stage", "3x"], "--stop-stage"),
    ],
)
def test_non_integer_stage_fails_before_the_script_runs(tmp_path, args, shown):
    out = run(tmp_path, *args)
    assert out.returncode == 1
    value = args[-1].split("=", 1)[1] if "=" in args[-1] else args[-1]
    assert f"demo.sh: {shown} must be an integer, got '{value}'" in out.stderr
    assert out.stdout == ""


def test_non_integer_stage_from_a_config_file_fails(tmp_path):
    (tmp_path / "my.conf").write_text("stop_stage=two\n")
    out = run(tmp_path, "--config", "my.conf")
    assert out.returncode == 1
    assert "demo.sh: --stop-stage must be an integer, got 'two'" in out.stderr


def test_negative_stage_is_an_integer(tmp_path):
    out = run(tmp_path, "--stage", "-1", "--stop-stage", "02")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("stage=-1 stop_stage=02 ")
