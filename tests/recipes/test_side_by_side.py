"""utils/side_by_side.sh: what demo.sh uses to run the two fine-tunings at the same time.

Checked with small shell commands: both run at once (the pair takes as long as the longer one),
progress lines quote the last line of each log without the logging prefix, a failure is named
with the end of its log and turns into exit status 1 after the others finish, and a TERM to the
caller stops the commands and their children.
"""

import os
import signal
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(tmp_path, body):
    path = tmp_path / "run.sh"
    path.write_text(
        f"set -euo pipefail\n. {REPO}/utils/log.sh\n. {REPO}/utils/side_by_side.sh\n" + body
    )
    return path


def test_commands_run_at_the_same_time_and_report_progress(tmp_path):
    line = "2026-12-06 21:30:51,524 INFO [trainer.py:609] (rank 0) epoch 0 update $i: loss=$i.5"
    script = _script(
        tmp_path,
        f"""
side_by_side_start one {tmp_path}/one.log bash -c \
  'for i in 1 2 3; do echo "{line}"; sleep 1; done'
side_by_side_start two {tmp_path}/logs/two.log bash -c 'sleep 3; echo two done'
side_by_side_wait 1
echo "status $?"
""",
    )
    t0 = time.monotonic()
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "status 0"
    assert elapsed < 5.5  # 3 s each: one after the other would take >= 6 s
    err = out.stderr
    assert f"one: started, log in {tmp_path}/one.log" in err
    assert "one: epoch 0 update " in err and "(rank 0)" not in err  # prefix stripped
    assert "one: finished" in err and "two: finished" in err
    assert (tmp_path / "logs" / "two.log").read_text() == "two done\n"


def test_a_failure_is_named_with_its_log_and_the_others_finish(tmp_path):
    script = _script(
        tmp_path,
        f"""
side_by_side_start good {tmp_path}/good.log bash -c 'sleep 2; echo ok'
side_by_side_start bad {tmp_path}/bad.log bash -c 'echo "cannot read cut 1089-134686-0000"; exit 3'
if side_by_side_wait 1; then echo "status 0"; else echo "status $?"; fi
""",
    )
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "status 1"
    assert f"bad: FAILED (exit status 3); the end of {tmp_path}/bad.log:" in out.stderr
    assert "cannot read cut 1089-134686-0000" in out.stderr
    assert "good: finished" in out.stderr
    assert (tmp_path / "good.log").read_text() == "ok\n"


def test_terminating_the_caller_stops_the_commands_and_their_children(tmp_path):
    marker = f"{tmp_path}/child-ran-on"
    script = _script(
        tmp_path,
        f"""
side_by_side_start slow {tmp_path}/slow.log bash -c 'bash -c "sleep 4; touch {marker}" & wait'
side_by_side_wait 60
""",
    )
    proc = subprocess.Popen(["bash", str(script)], stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 130
    time.sleep(4)
    assert not os.path.exists(marker)  # the grandchild was stopped too
