"""Start and collect the scapy captures on every vantage point the topology names."""

from __future__ import annotations

import time
from pathlib import Path

from lab.capture_agent import DONE, READY
from lab.engine import Engine, LabError

NODE_DIR = "/tmp/natlab-capture"
AGENT = ["python3", "-m", "lab.capture_agent", "--dir", NODE_DIR]
WAIT_S = 30


def _wait_for(engine: Engine, node: str, marker: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not engine.exec(node, ["test", "-f", f"{NODE_DIR}/{marker}"]).ok:
        if time.monotonic() > deadline:
            raise LabError(f"capture on {node} did not report {marker} within {WAIT_S}s")
        time.sleep(0.2)


class Captures:
    """A capture session: start() on every captured node, then stop_and_collect() into a run dir."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.nodes = sorted({node.name for node, _ in engine.topology.captures})

    def start(self) -> None:
        for node in self.nodes:
            self.engine.exec(node, ["rm", "-rf", NODE_DIR])
            self.engine.spawn(node, AGENT)
        for node in self.nodes:
            _wait_for(self.engine, node, READY)

    def stop_and_collect(self, run_dir: Path) -> list[Path]:
        for node in self.nodes:
            self.engine.exec(node, ["pkill", "-INT", "-f", "lab.capture_agent"])
        for node in self.nodes:
            _wait_for(self.engine, node, DONE)
            self.engine.copy_out(node, NODE_DIR, run_dir)
        for marker in (READY, DONE):
            (run_dir / marker).unlink(missing_ok=True)
        return sorted(run_dir.glob("*.pcap"))
