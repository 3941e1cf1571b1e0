"""Where a netns lab's pieces are, and what they are called: namespaces, interfaces, state files.

Every node is a named network namespace, <project>-<node>; every network a bridge inside one more,
<project>-switch. Each node interface is a veth made inside the node as eth0, eth1, ... with an
index the engine gives (so its address needs no lookup), its far end named after the node and
side in the switch. The lab's state lives under /run/natlab/<project>: the namespace manifest
(every namespace written down before it is made), a run dir per node (ready file, log, main
program's pid, and for a node that keeps secrets private/: a tmpfs of its own mount namespace),
the fork server's socket and pid.
"""

from __future__ import annotations

import os
from pathlib import Path

from lab.topology import Node, Topology
from node.netns import path_of
from node.settings import PRIVATE_DIR, RUN_DIR_ENV, ready_file

STATE_ROOT = Path("/run/natlab")
IFNAMSIZ = 15
# Interface indexes the engine gives (per namespace): bridges in the switch, a node's eth0, eth1, ...
BRIDGE_INDEX_BASE = 1000
NODE_INDEX_BASE = 10


def _ifname(preferred: str, fallback: str) -> str:
    return preferred if len(preferred) <= IFNAMSIZ else fallback


def namespace_inode(name: str) -> int | None:
    try:
        return os.stat(path_of(name)).st_ino
    except FileNotFoundError:
        return None


class NetnsLayout:
    """The names and places of one netns lab, derived from its topology alone."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.state_dir = STATE_ROOT / topology.project
        self.manifest = self.state_dir / "namespaces"
        self.switch = f"{topology.project}-switch"
        self.forkserver_socket = self.state_dir / "forkserver.sock"
        self.forkserver_pid = self.state_dir / "forkserver.pid"
        self.forkserver_log = self.state_dir / "forkserver.log"
        self.capture_dir = self.state_dir / "capture"
        self._index = {node.name: i for i, node in enumerate(topology.nodes)}
        self.bridge_index = {net.name: BRIDGE_INDEX_BASE + i for i, net in enumerate(topology.networks)}

    def namespace(self, node: str) -> str:
        return self.topology.container_name(node)

    def node_dir(self, node: str) -> Path:
        return self.state_dir / "nodes" / node

    def private_dir(self, node: str) -> Path:
        """Where the node's secrets are: a tmpfs in its own mount namespace, empty to everyone else."""
        return self.node_dir(node) / PRIVATE_DIR

    def main_pid_file(self, node: str) -> Path:
        """The node's main program (pid and start time): its mount namespace is found by it."""
        return self.node_dir(node) / "main.pid"

    def ready_file(self, node: str) -> Path:
        return ready_file({RUN_DIR_ENV: str(self.node_dir(node))})

    def bridge(self, network: str) -> str:
        return _ifname(network, f"br{[n.name for n in self.topology.networks].index(network)}")

    def port(self, node: Node, side: str) -> str:
        """The switch end of a node's veth, named after the node and the interface's side."""
        i = [iface.side for iface in node.interfaces].index(side)
        return _ifname(f"{node.name}.{side}", f"p{self._index[node.name]}.{i}")

    @staticmethod
    def iface(node: Node, side: str) -> str:
        """The node's end of a veth: eth0, eth1, ... in the topology's interface order."""
        return f"eth{[i.side for i in node.interfaces].index(side)}"

    @staticmethod
    def iface_index(position: int) -> int:
        """The index the engine gives a node's interface number `position` (0 for eth0)."""
        return NODE_INDEX_BASE + position

    def namespaces(self) -> list[str]:
        """Every namespace this project made (the manifest) or would make (the topology), switch last."""
        recorded = self.manifest.read_text().split() if self.manifest.exists() else []
        wanted = [self.namespace(n.name) for n in self.topology.nodes]
        names = [n for n in dict.fromkeys(recorded + wanted) if n != self.switch]
        return names + [self.switch]
