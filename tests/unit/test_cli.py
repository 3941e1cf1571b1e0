"""The CLI refuses bad input before it touches anything."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True)


def test_unknown_nat_preset_is_a_clear_error():
    proc = run("--nat-a", "full-moon", "up")
    assert proc.returncode == 2
    assert "unknown NAT preset 'full-moon'; valid presets: port-restricted" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_engine_is_a_clear_error():
    proc = run("--engine", "vagrant", "status")
    assert proc.returncode == 2 and "valid engines: docker" in proc.stderr


def test_verdict_on_a_missing_run_says_so(tmp_path):
    proc = run("verdict", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "no run at" in proc.stderr


def test_compose_file_check_passes_on_a_clean_checkout():
    proc = run("compose", "--check")
    assert proc.returncode == 0, proc.stderr


def test_help_explains_the_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("up", "down", "punch-test", "verdict", "report", "show", "compose"):
        assert command in proc.stdout


@pytest.mark.parametrize("args, said", [
    (["--b", "x"], "give both programs: A='command line' B='command line'"),
    (["--a", "x", "--b", "y", "--duration", "0"], "DURATION must be 1 to 3600 seconds, not 0"),
])
def test_make_run_refuses_bad_settings_in_one_line_before_touching_a_lab(args, said):
    proc = run("run", *args)
    assert proc.returncode == 2 and proc.stderr.strip() == f"natlab: error: {said}", proc.stderr


@pytest.mark.parametrize("args, said", [
    (["--topology", "ring", "status"], "TOPOLOGY must be one of standard, same-lan, cgnat, public-peer, cgnat-a, cgnat-apart or a .toml file, not 'ring'"),
    (["--topology", "same-lan", "matrix"], "TOPOLOGY=same-lan: the matrix builds a lab of its own, one pair per "
     "cell; ask for its shapes with SHAPES=same-lan (comma-separated) and unset TOPOLOGY"),
    (["matrix", "--shapes", "standard,ring"], "SHAPES: unknown shape 'ring'; valid: standard, same-lan, cgnat, "
     "public-peer, cgnat-a, cgnat-apart"),
])
def test_a_shape_the_command_cannot_take_is_refused_in_one_line(args, said):
    proc = run("--engine", "netns", *args)
    assert proc.returncode == 2 and proc.stderr.strip() == f"natlab: error: {said}", proc.stderr


def test_a_full_disk_takes_the_lab_down_and_says_so_in_one_line(monkeypatch, capsys):
    """Whatever command fills the disk, the lab goes down whole (no capture agent or node left
    half-way) and the error says so; exit 2, no traceback."""
    from lab import cli
    from lab.errors import DiskFull

    downs = []

    class Engine:
        def down(self, progress):
            downs.append(True)

    def fills_the_disk(args, engine):
        raise DiskFull("no space left on the disk of /x while writing run r: nothing of it was kept")

    monkeypatch.setattr(cli, "make_engine", lambda *a, **kw: Engine())
    monkeypatch.setattr(cli, "cmd_punch_test", fills_the_disk)
    assert cli.main(["--engine", "netns", "punch-test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert downs == [True]
    assert err[-1] == ("natlab: error: no space left on the disk of /x while writing run r: nothing of it was kept; "
                       "the lab is down (`make lab-up` to start it again)")
