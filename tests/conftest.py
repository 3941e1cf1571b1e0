"""Fixtures shared by the test modules.

`engine` is the real lab under Docker, stood up once for each system-test module that asks for
it and torn down after it (module scope: every module starts from a fresh lab).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def say(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr)


@pytest.fixture(scope="module")
def engine():
    from lab.docker_engine import DockerEngine
    from lab.topology import build_topology

    eng = DockerEngine(build_topology(), ROOT)
    eng.up(say)
    yield eng
    eng.down(say)
