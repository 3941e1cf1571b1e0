"""Standing a lab up and driving it, for the system tests (and the few unit tests that need root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def say(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr)


def lab(engine_name: str, **topology):
    """An engine for a lab built from the topology's knobs (pairs, project, presets), not yet up."""
    from lab.engines.registry import make_engine
    from lab.topology import build_topology

    return make_engine(engine_name, build_topology(**topology))


def lab_up(engine_name: str, **topology):
    """A module fixture's lab: up for the module's tests, down after them whatever happened."""
    engine = lab(engine_name, **topology)
    engine.up(say)
    try:
        yield engine
    finally:
        engine.down(say)


def punch_test_cli(captures: Path, engine, settings: dict[str, str] | None = None
                   ) -> tuple[subprocess.CompletedProcess, Path]:
    """`python -m lab punch-test` on `engine`'s lab with its captures under `captures` (and the make
    variables `settings`, TOPOLOGY=...): the process and the run dir."""
    env = {**os.environ, "NATLAB_CAPTURES": str(captures), "ENGINE": engine.name,
           "NATLAB_PROJECT": engine.topology.project, "PAIRS": str(len(engine.topology.punch_pairs)),
           **(settings or {})}
    argv = [sys.executable, "-m", "lab", "punch-test"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, (captures / "latest").resolve()


def lab_namespaces(project: str) -> list[str]:
    """The namespaces on the host that belong to `project` (exactly: another project may share a prefix)."""
    from node.netns import NETNS_DIR

    ours = {f"{project}-switch"} | {f"{project}-{kind}" for kind in ("broker", "outsider", "relay", "wan-host")}
    names = sorted(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else []
    return [n for n in names if n in ours or n.startswith((f"{project}-router-", f"{project}-peer-"))]


def leftovers(engine) -> list[str]:
    """What of the lab is still on the host: the engine's own objects (containers and networks, or
    namespaces and processes)."""
    project = engine.topology.project
    if engine.name == "docker":
        label = f"com.docker.compose.project={project}"
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        return ([c.name for c in engine._lab_containers()]
                + [n.name for n in engine.client.networks.list(filters={"label": label})]
                + [line for line in links.splitlines() if f"{project}-" in line])

    return lab_namespaces(project) + [str(p) for p in [engine.state_dir] if p.exists()]
