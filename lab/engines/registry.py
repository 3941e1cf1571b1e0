"""The engines by name, as ENGINE spells them; each imported only when asked for."""

from __future__ import annotations

from lab.engines.base import Engine
from lab.errors import LabError
from lab.paths import PROJECT_DIR
from lab.topology import Topology

ENGINES = ("docker", "netns")


def make_engine(name: str, topology: Topology) -> Engine:
    if name not in ENGINES:
        raise LabError(f"unknown engine {name!r}; valid engines: {', '.join(ENGINES)}")
    if name == "netns":
        from lab.engines.netns.engine import NetnsEngine

        return NetnsEngine(topology, PROJECT_DIR)
    from lab.engines.docker.engine import DockerEngine

    return DockerEngine(topology, PROJECT_DIR)
