"""Fixtures and helpers shared by the test modules.

`engine` is the real lab, once on each engine: netns (marker netns: root, no Docker) and Docker
(marker docker). It is stood up once for each system-test module that asks for it and torn down
after it (module scope: every module starts from a fresh lab); pytest runs a module's netns tests
before its Docker ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr)


ENGINES = [
    pytest.param("netns", marks=pytest.mark.netns, id="netns"),
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def lab(engine_name: str, **topology):
    """An engine for a lab built from the topology's knobs (pairs, project, presets), not yet up."""
    from lab.engines.registry import make_engine
    from lab.topology import build_topology

    return make_engine(engine_name, build_topology(**topology))


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    eng = lab(request.param)
    eng.up(say)
    yield eng
    eng.down(say)


def punch_test_cli(captures: Path, engine) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m lab punch-test` on `engine`'s lab with its captures under `captures`: the process and
    the run dir."""
    env = {**os.environ, "NATLAB_CAPTURES": str(captures), "ENGINE": engine.name,
           "NATLAB_PROJECT": engine.topology.project, "PAIRS": str(len(engine.topology.punch_pairs))}
    argv = [sys.executable, "-m", "lab", "punch-test"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, (captures / "latest").resolve()


def frames_per_vantage(run_dir: Path) -> dict[str, int]:
    """How many frames each <vantage>.pcap of a run holds."""
    from scapy.utils import rdpcap

    return {p.stem: len(rdpcap(str(p))) for p in sorted(run_dir.glob("*.pcap"))}


def tshark_interface_names(pcapng: Path) -> list[str]:
    """The interface name of every frame of a pcapng, as tshark reads it."""
    out = subprocess.run(["tshark", "-r", str(pcapng), "-T", "fields", "-e", "frame.interface_name"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()
