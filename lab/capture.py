"""Start and collect the scapy captures on every vantage point the topology names.

The engine says where the capture agents run (Engine.capture_agents); this module starts them,
waits until each has its sockets open, stops them and copies their pcaps into the run directory.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.capture_agent import DONE, PID, READY
from lab.engine import CaptureAgent, Engine, LabError

NODE_DIR = "/tmp/natlab-capture"  # an agent's directory in a node that has a filesystem of its own
WAIT_S = 30
PARALLEL = 16  # agents started and collected at once


def agent_argv(directory: str, vantages: list[str] | None = None) -> list[str]:
    """The command of a capture agent; `vantages` (NAME=NETNS_PATH:IFACE) for one that captures other nodes."""
    return ["python3", "-m", "lab.capture_agent", "--dir", directory,
            *(arg for v in vantages or () for arg in ("--vantage", v))]


def _wait_for(engine: Engine, agent: CaptureAgent, marker: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not engine.exec(agent.node, ["test", "-f", f"{agent.directory}/{marker}"]).ok:
        if time.monotonic() > deadline:
            raise LabError(f"capture on {agent.node} did not report {marker} within {WAIT_S}s")
        time.sleep(0.02)


class Captures:
    """A capture session: start() every agent, then stop_and_collect() into a run dir."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.agents = engine.capture_agents()

    def _each(self, work) -> None:
        with ThreadPoolExecutor(min(PARALLEL, len(self.agents))) as pool:
            list(pool.map(work, self.agents))

    def start(self) -> None:
        def start_one(agent: CaptureAgent) -> None:
            self.engine.exec(agent.node, ["rm", "-rf", agent.directory])
            self.engine.spawn(agent.node, agent.argv)
            _wait_for(self.engine, agent, READY)

        self._each(start_one)

    def stop_and_collect(self, run_dir: Path) -> list[Path]:
        def stop_one(agent: CaptureAgent) -> None:
            # By its own pid: a pattern (pkill -f) would hit every agent on a host whose nodes share it.
            pid = self.engine.exec(agent.node, ["cat", f"{agent.directory}/{PID}"]).stdout.strip()
            if pid.isdigit():
                self.engine.exec(agent.node, ["kill", "-INT", pid])
            _wait_for(self.engine, agent, DONE)
            self.engine.copy_out(agent.node, agent.directory, run_dir)

        self._each(stop_one)
        for marker in (READY, DONE, PID):
            (run_dir / marker).unlink(missing_ok=True)
        return sorted(run_dir.glob("*.pcap"))
