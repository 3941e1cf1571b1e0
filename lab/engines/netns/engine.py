"""The netns engine: the lab on the kernel's own network namespaces, no containers.

The engine protocol over three parts, one concern each: the layout (layout.py: what every
namespace, interface and state file is called), the wiring (wiring.py: namespaces, bridges,
veths, addresses, by netlink batches) and the processes (processes.py: the fork server, each
node's program, commands in nodes), plus the one host setting it touches (host_limits.py).
lab-up returns once every node's program has said it is ready and every link runs.

Every namespace is written down before it is made (the manifest), so lab-down removes exactly what
this project made, whatever PAIRS says now, and a failed or interrupted lab-up removes what it got to.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab.engines.base import CaptureAgent, ExecResult
from lab.engines.host_packages import ensure_packages, require_root
from lab.engines.netns.host_limits import raise_arp_limits, restore_arp_limits
from lab.engines.netns.layout import STATE_ROOT, NetnsLayout, namespace_inode
from lab.engines.netns.processes import NodeProcesses, pids_by_namespace, stop_processes_in
from lab.engines.netns.wiring import Wiring
from lab.engines.node_commands import capture_agent
from lab.engines.rollback import undone_on_failure
from lab.errors import Progress
from lab.paths import USER_IMAGE_ENV, lab_runtime, mailbox_dir, user_files
from lab.topology import Topology
from node.netns import path_of, remove

# The relay node runs the host's turnserver; nsenter takes other programs into a node's mount namespace.
TOOLS = {"nft": "nftables", "iptables": "iptables", "conntrack": "conntrack", "ip": "iproute2",
         "turnserver": "coturn", "nsenter": "util-linux"}


class NetnsEngine:
    name = "netns"

    def __init__(self, topology: Topology, project_dir: Path) -> None:
        self.topology = topology
        self.project_dir = project_dir
        self.layout = NetnsLayout(topology)
        self.wiring = Wiring(self.layout)
        self.processes = NodeProcesses(self.layout, project_dir)

    @property
    def state_dir(self) -> Path:
        return self.layout.state_dir

    def node_dir(self, node: str) -> Path:
        """The node's own run dir on the host (its ready file and main.log)."""
        return self.layout.node_dir(node)

    def up(self, progress: Progress) -> None:
        require_root("lab-up")
        ensure_packages(TOOLS, progress)
        if os.environ.get(USER_IMAGE_ENV):
            progress(f"NODE_IMAGE={os.environ[USER_IMAGE_ENV]} is for the Docker engine: netns nodes run the host's "
                     "own programs (install what yours need on the host)")
        if self.is_up():
            progress(f"the {self.topology.project} lab is already up")
            return
        layout, wiring, processes = self.layout, self.wiring, self.processes
        if any(path_of(name).exists() for name in layout.namespaces()):
            progress("a lab of this project is partly up or of another size: removing it first")
            self.down(progress)
        nodes = self.topology.nodes
        progress(f"creating {len(nodes) + 1} network namespaces ({self.topology.project}-*), "
                 f"{len(self.topology.networks)} bridges in {layout.switch}")
        with undone_on_failure(lambda: self.down(lambda _msg: None), progress):
            layout.state_dir.mkdir(parents=True, exist_ok=True)
            raise_arp_limits(layout, progress)
            wiring.create_namespace(layout.switch)
            processes.start_forkserver()  # after the first namespace: pyroute2 is imported
            for node in nodes:
                wiring.create_namespace(layout.namespace(node.name))
            wiring.build_switch()
            # Every node wired, then every program started: one phase after the other (wiring while
            # programs start only queues both for the RTNL lock and the GIL).
            wiring.wire(nodes)
            processes.await_forkserver()
            started = {node.name: processes.start(node) for node in nodes}
            wiring.plug_ports()
            progress(f"{len(nodes)} nodes wired, their programs started; waiting until each is ready")
            processes.wait_ready(started, progress)
            wiring.wait_links_running()

    def down(self, progress: Progress) -> None:
        names = [n for n in self.layout.namespaces() if path_of(n).exists()]
        inodes = {namespace_inode(n) for n in names}
        self.processes.stop_forkserver()  # first: it starts nothing more
        stopped = stop_processes_in(inodes)
        for name in names:
            try:
                remove(name)
            except OSError as exc:
                progress(f"could not remove namespace {name}: {exc}")
        restore_arp_limits(self.layout)
        shutil.rmtree(self.layout.state_dir, ignore_errors=True)
        shutil.rmtree(self.project_dir / lab_runtime(self.topology.project), ignore_errors=True)  # its mailboxes
        if STATE_ROOT.exists() and not any(STATE_ROOT.iterdir()):
            STATE_ROOT.rmdir()
        if names:
            progress(f"removed {len(names)} namespaces (with their links) and stopped {stopped} processes")

    def host_pids(self) -> list[int]:
        """The lab's fork server."""
        pid = self.processes.forkserver_pid()
        return [] if pid is None else [pid]

    def program_paths(self) -> tuple[str, str]:
        """Nodes share the host's filesystem: the mailboxes and the user's files are where they are."""
        return str(mailbox_dir(self.topology.project)), str(user_files() or self.project_dir)

    def is_up(self) -> bool:
        """Every node's namespace exists, has said it is ready and still has a process running in it."""
        alive = pids_by_namespace()
        for node in self.topology.nodes:
            inode = namespace_inode(self.layout.namespace(node.name))
            if inode is None or not alive.get(inode):
                return False
            if not self.layout.ready_file(node.name).exists():
                return False
        return namespace_inode(self.layout.switch) is not None and self.processes.forkserver_answers()

    def exec(self, node: str, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        return self.processes.exec(node, argv, stdin)

    def spawn(self, node: str, argv: list[str]) -> None:
        self.processes.spawn(node, argv)

    def copy_out(self, node: str, path: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for item in Path(path).iterdir():
            if item.is_file():
                shutil.copy2(item, dest / item.name)

    def set_forwarding(self, node: str, enabled: bool) -> None:
        self.wiring.set_forwarding(node, enabled)

    def link_addresses(self, node: str) -> dict[str, str]:
        return self.wiring.link_addresses(node)

    def capture_agents(self) -> list[CaptureAgent]:
        """One agent for the whole lab, run in the broker's namespace, each socket opened in its vantage's."""
        vantages = [
            f"{name}={path_of(self.layout.namespace(node.name))}:{self.layout.iface(node, iface.side)}"
            for name, (node, iface) in self.topology.vantages.items()
        ]
        directory = str(self.layout.capture_dir)
        return [CaptureAgent(self.topology.broker.name, capture_agent(directory, vantages), directory)]
