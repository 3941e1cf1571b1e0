"""The netns lab's wires: its namespaces, the switch's bridges, each node's veths and addresses.

Links and addresses go by batches of netlink requests (node/netlink_batch.py). Nothing is made in
the host's own namespace: every bridge sits in the switch namespace, so the lab cannot collide
with Docker's bridges, and nothing leaks.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.engines.launch import node_sysctls
from lab.engines.netns.layout import NetnsLayout
from lab.errors import LabError
from lab.topology import Node
from node.netlink_batch import Batch
from node.netns import create, entered, path_of, write_sysctl

# A new namespace starts from the host's IPv4 settings (devconf inheritance): forwarding off unless
# the node's own sysctls turn it on (routers).
BASELINE_SYSCTLS = {"net.ipv4.ip_forward": 0}
SWITCH_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
    # Where br_netfilter is loaded (Docker loads it), bridged frames would cross the switch's own
    # iptables and conntrack: the switch is a plain wire.
    "net.bridge.bridge-nf-call-iptables": 0,
    "net.bridge.bridge-nf-call-ip6tables": 0,
    "net.bridge.bridge-nf-call-arptables": 0,
}
SIOCGIFHWADDR = 0x8927
SIOCGIFFLAGS = 0x8913
IFF_RUNNING = 0x40
LINKS_WAIT_S = 30.0


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done (a namespace is made whole or not at all).

    Blocked, not ignored: a signal that arrives meanwhile is delivered on leaving. Children forked
    inside (pyroute2 makes a namespace in a child) inherit the mask, so the terminal's Ctrl-C,
    which goes to the whole process group, cannot kill one half-way either."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ifreq(sock: socket.socket, request: int, ifname: str) -> bytes:
    """An interface ioctl, in the namespace `sock` was made in (no netlink dump: a big lab has hundreds)."""
    return fcntl.ioctl(sock, request, struct.pack("256s", ifname.encode()))


def mac_address(sock: socket.socket, ifname: str) -> str:
    return _ifreq(sock, SIOCGIFHWADDR, ifname)[18:24].hex(":")


def is_running(sock: socket.socket, ifname: str) -> bool:
    """Up with its carrier seen: the kernel (linkwatch, which waits for the RTNL lock, so seconds
    when other labs' namespaces are being freed) has activated it. Before that it drops what it sends."""
    return bool(struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, ifname), 16)[0] & IFF_RUNNING)


class Wiring:
    """Makes and reads the lab's namespaces and links (lab-down removes them with the namespaces)."""

    def __init__(self, layout: NetnsLayout) -> None:
        self.layout = layout
        self.topology = layout.topology

    @contextmanager
    def inside(self, node: str) -> Iterator[None]:
        path = path_of(self.layout.namespace(node))
        if not path.exists():
            raise LabError(f"{self.layout.namespace(node)} does not exist: run `make lab-up` first")
        with entered(path):
            yield

    def create_namespace(self, name: str) -> None:
        with signals_deferred():
            with self.layout.manifest.open("a") as f:  # written down first, then made whole
                f.write(name + "\n")
            create(name)

    def build_switch(self) -> None:
        """The bridges, each given its index (the ports are put on them by index, without lookups)."""
        batch = Batch()
        batch.link("set", ifname="lo", state="up")
        for net in self.topology.networks:
            batch.link("add", index=self.layout.bridge_index[net.name], ifname=self.layout.bridge(net.name),
                       kind="bridge", br_stp_state=0, state="up")
        with entered(path_of(self.layout.switch)):
            for key, value in SWITCH_SYSCTLS.items():
                if Path("/proc/sys", key.replace(".", "/")).exists():
                    write_sysctl(key, value)
            batch.send()

    def wire(self, nodes: Iterable[Node]) -> None:
        """Wire every node, from one thread: netlink requests from several threads only queue for the
        kernel's RTNL lock and for the GIL (a hundred pairs took twice as long, measured)."""
        switch_fd = os.open(path_of(self.layout.switch), os.O_RDONLY)
        try:
            for node in nodes:
                self._wire(node, switch_fd)
        finally:
            os.close(switch_fd)

    def _wire(self, node: Node, switch_fd: int) -> None:
        """Sysctls first (new interfaces take the defaults), then loopback up and each interface: a
        veth made in the node with its index (so its address needs no lookup), its other end sent to the switch."""
        batch = Batch()
        batch.link("set", ifname="lo", state="up")
        for i, iface in enumerate(node.interfaces):
            index = self.layout.iface_index(i)
            batch.link("add", index=index, ifname=self.layout.iface(node, iface.side), kind="veth", state="up",
                       peer={"ifname": self.layout.port(node, iface.side), "net_ns_fd": switch_fd})
            batch.addr("add", index=index, address=str(iface.address),
                       prefixlen=self.topology.network(iface.network).subnet.prefixlen)
        with self.inside(node.name):
            for key, value in {**BASELINE_SYSCTLS, **node_sysctls(node)}.items():
                write_sysctl(key, value)
            batch.send()

    def plug_ports(self) -> None:
        """Put every node's switch end on its bridge and up: one batch for the whole lab."""
        batch = Batch()
        for node in self.topology.nodes:
            for iface in node.interfaces:
                batch.link("set", ifname=self.layout.port(node, iface.side),
                           master=self.layout.bridge_index[iface.network], state="up")
        with entered(path_of(self.layout.switch)):
            batch.send()

    def links_not_running(self) -> list[str]:
        layout, down = self.layout, []
        with entered(path_of(layout.switch)), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            down += [f"{layout.switch}:{layout.port(n, i.side)}" for n in self.topology.nodes for i in n.interfaces
                     if not is_running(sock, layout.port(n, i.side))]
        for node in self.topology.nodes:
            with self.inside(node.name), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                down += [f"{layout.namespace(node.name)}:{layout.iface(node, i.side)}" for i in node.interfaces
                         if not is_running(sock, layout.iface(node, i.side))]
        return down

    def wait_links_running(self) -> None:
        """Ready means every link carries traffic: the first packets of a run must not be lost."""
        deadline = time.monotonic() + LINKS_WAIT_S
        while down := self.links_not_running():
            if time.monotonic() > deadline:
                raise LabError(f"links not running after {LINKS_WAIT_S:.0f}s: {', '.join(down[:10])}")
            time.sleep(0.01)

    def set_forwarding(self, node: str, enabled: bool) -> None:
        with self.inside(node):
            write_sysctl("net.ipv4.ip_forward", int(enabled))

    def link_addresses(self, node: str) -> dict[str, str]:
        """Each interface's address (as the engine gave it, like Docker's report: no aliases) and the
        MAC the kernel has for it, by ioctl: a netlink dump per node costs a big lab seconds."""
        spec = self.topology.node(node)
        with self.inside(node), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            return {str(i.address): mac_address(sock, self.layout.iface(spec, i.side)) for i in spec.interfaces}
