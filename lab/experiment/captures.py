"""Start and collect the scapy captures on every vantage point the topology names.

The engine says where the capture agents run (Engine.capture_agents); this module starts them,
waits until each has its sockets open, stops them and copies their pcaps into the run directory,
with every agent's account of its captures (node.capture_agent's STATS) gathered in one
captures.json: what the kernel dropped, the markers each capture saw, when each agent started and
stopped. The analysis decides from those and the pcaps whether each capture is whole.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.engines import node_commands
from lab.engines.base import CaptureAgent, Engine
from lab.errors import LabError
from lab.run_format import CAPTURE_STATS
from node.capture_agent import DONE, PID, READY, STATS

WAIT_S = 30
PARALLEL = 16  # agents started and collected at once


def _wait_for(engine: Engine, agent: CaptureAgent, marker: str) -> None:
    if not node_commands.wait_for_file(f"{agent.directory}/{marker}", WAIT_S).run(engine, agent.node):
        raise LabError(f"capture on {agent.node} did not report {marker} within {WAIT_S}s")


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
            node_commands.remove_tree(agent.directory).run(self.engine, agent.node)
            self.engine.spawn(agent.node, agent.argv)
            _wait_for(self.engine, agent, READY)

        self._each(start_one)

    def stop_and_collect(self, run_dir: Path) -> list[Path]:
        accounts: dict[str, dict] = {}

        def stop_one(agent: CaptureAgent) -> None:
            text = node_commands.stop_capture(agent.directory, PID, DONE, STATS, WAIT_S).run(self.engine, agent.node)
            if text is None:
                raise LabError(f"capture on {agent.node} did not report {DONE} within {WAIT_S}s")
            try:
                accounts[agent.node] = json.loads(text)
            except ValueError:
                accounts[agent.node] = {"error": f"its {STATS} does not read: {text[:80]!r}"}
            self.engine.copy_out(agent.node, agent.directory, run_dir)

        self._each(stop_one)
        for marker in (READY, DONE, PID, STATS):
            (run_dir / marker).unlink(missing_ok=True)
        vantages = {name: {**v, "agent": node, "started": a["started"], "stopped": a["stopped"]}
                    for node, a in accounts.items() for name, v in a.get("vantages", {}).items()}
        errors = {node: a["error"] for node, a in accounts.items() if "error" in a}
        (run_dir / CAPTURE_STATS).write_text(json.dumps({"vantages": vantages, "errors": errors}, indent=1) + "\n")
        return sorted(run_dir.glob("*.pcap"))
