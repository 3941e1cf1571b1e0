"""peers.program_runner, run here on the host: how a user's program ends is reported, never hidden."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from peers import program_runner
from peers.program_runner import run

ROOT = Path(__file__).resolve().parents[2]


def test_a_program_that_exits_is_reported_with_its_code_and_output(tmp_path):
    result = run("echo hello; echo oops >&2; exit 3", tmp_path / "out", tmp_path, 5, {"NATLAB_SIDE": "a"})
    assert result["exit_code"] == 3 and result["ended"] == "exited"
    assert result["head"] == ["hello", "oops"] and (tmp_path / "out" / "program.log").read_text() == "hello\noops\n"


def test_the_environment_reaches_the_program(tmp_path):
    result = run('echo "$NATLAB_SIDE $NATLAB_PAIR"', tmp_path / "out", tmp_path, 5,
                 {"NATLAB_SIDE": "b", "NATLAB_PAIR": "2"})
    assert result["head"] == ["b 2"]


def test_a_program_still_running_at_the_duration_is_stopped_and_so_are_its_children(tmp_path):
    started = time.monotonic()
    result = run(f"sleep 60 & echo $! > {tmp_path}/child; sleep 60", tmp_path / "out", tmp_path, 0.5, {})
    assert result["ended"] == "stopped" and result["exit_code"] != 0
    assert time.monotonic() - started < 5
    assert gone(int((tmp_path / "child").read_text()))


def gone(pid: int, within_s: float = 2.0) -> bool:
    """No such process, or a dead one not yet reaped, within a moment (a signal takes its time to land)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_a_program_that_ignores_term_is_killed(tmp_path):
    result = run("trap '' TERM; sleep 60", tmp_path / "out", tmp_path, 0.3, {})
    assert result["ended"] == "killed"


def test_a_command_that_does_not_exist_says_so(tmp_path):
    result = run("no-such-program --flag", tmp_path / "out", tmp_path, 5, {})
    assert result["exit_code"] == 127 and "not found" in " ".join(result["head"])


def test_a_missing_start_directory_means_not_started(tmp_path):
    result = run("true", tmp_path / "out", tmp_path / "nowhere", 5, {})
    assert result["ended"] == "not started" and result["exit_code"] is None


def test_the_answer_is_one_json_line(tmp_path, capsys):
    assert program_runner.main(["--out", str(tmp_path / "o"), "--cwd", str(tmp_path), "--duration", "5",
                                "--env", "X=1", "--", "echo", "$X"]) == 0
    assert json.loads(capsys.readouterr().out)["head"] == ["1"]


def runner(tmp_path, command: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "peers.program_runner", "--out", str(tmp_path / "out"),
                             "--cwd", str(tmp_path), *extra, "--", command],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_a_daemon_that_leaves_the_session_does_not_outlive_the_run(tmp_path):
    # setsid: a new session, out of reach of the program's process group; the runner still ends it
    proc = runner(tmp_path, f"setsid sh -c 'echo $$ > {tmp_path}/daemon; exec sleep 60' & sleep 0.3; exit 0",
                  "--duration", "5")
    result = json.loads(proc.communicate(timeout=20)[0].splitlines()[-1])
    assert result["ended"] == "exited" and result["left_running"] == 1 and result["left"][0].startswith("sleep[")
    assert gone(int((tmp_path / "daemon").read_text()))


def test_a_child_still_dying_of_the_stop_is_not_counted_as_left_running(tmp_path):
    # the shell dies of the TERM at once; its child, reached by the same TERM, takes 0.3 s to end and
    # meanwhile is the runner's (the subreaper's): it was stopped with the program, not left running
    slow = "sh -c 'trap \"sleep 0.3; exit 0\" TERM; while :; do sleep 0.05; done' & wait"
    proc = runner(tmp_path, slow, "--duration", "0.5")
    result = json.loads(proc.communicate(timeout=20)[0].splitlines()[-1])
    assert result["ended"] == "stopped" and result["left_running"] == 0, result


def test_term_to_the_runner_stops_the_program_before_its_duration(tmp_path):
    pid_file = tmp_path / "runner.pid"
    proc = runner(tmp_path, "sleep 60", "--duration", "60", "--pid-file", str(pid_file))
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    result = json.loads(proc.communicate(timeout=20)[0].splitlines()[-1])
    assert result["ended"] == "stopped" and result["seconds"] < 30


def test_an_environment_on_stdin_reaches_the_program_and_stays_off_the_command_line(tmp_path):
    argv = [sys.executable, "-m", "peers.program_runner", "--out", str(tmp_path / "out"), "--cwd", str(tmp_path),
            "--env-stdin", "--", 'echo "$NATLAB_TURN_PASSWORD"; cat /proc/$PPID/cmdline']
    proc = subprocess.run(argv, cwd=ROOT, input='{"NATLAB_TURN_PASSWORD": "pw-123"}', capture_output=True, text=True)
    head = json.loads(proc.stdout.splitlines()[-1])["head"]
    assert head[0] == "pw-123" and "pw-123" not in head[1]  # the runner's own command line lacks it
    bad = subprocess.run(argv, cwd=ROOT, input="nope", capture_output=True, text=True)
    assert bad.returncode == 2 and "--env-stdin: standard input is not one JSON object" in bad.stderr
