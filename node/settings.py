"""A node's settings, as its engine hands them over: NATLAB_* environment variables, and its own files.

An engine starts each node with a few NATLAB_* variables derived from the topology (the host's
lab/engines/launch.py encodes them with the functions here; the node decodes them). Nodes that
share one filesystem (the netns engine) get a run directory of their own (NATLAB_RUN_DIR), and in
it a private directory for their secrets that no other node sees; a container keeps its files
under /run.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

READY_FILE = Path("/run/natlab-ready")  # where a node that has a filesystem of its own reports ready
RUN_DIR_ENV = "NATLAB_RUN_DIR"  # a node's own directory, where nodes share one filesystem (netns engine)
PRIVATE_DIR = "private"  # in the run dir: the node's secrets, seen by its own processes alone


@dataclass(frozen=True)
class NodeSettings:
    name: str
    addresses: dict[str, IPv4Address]  # side ("wan"/"lan") -> address
    routes: list[tuple[IPv4Network, IPv4Address]]
    nat: str | None
    aliases: list[IPv4Interface] = field(default_factory=list)  # extra addresses on the first interface
    link: str | None = None  # the access link's condition (routers, the broker): node/link.py
    relay_peers: list[tuple[IPv4Address, IPv4Address]] = field(default_factory=list)  # the relay: whom it may relay to


def encode_addresses(addresses: dict[str, IPv4Address]) -> str:
    return ",".join(f"{side}={ip}" for side, ip in addresses.items())


def encode_aliases(aliases: list[IPv4Interface]) -> str:
    return ",".join(str(a) for a in aliases)


def encode_routes(routes: list[tuple[IPv4Network, IPv4Address]]) -> str:
    return ",".join(f"{dst} via {via}" for dst, via in routes)


def encode_ranges(ranges: list[tuple[IPv4Address, IPv4Address]]) -> str:
    return ",".join(f"{low}-{high}" for low, high in ranges)


def _ranges(text: str) -> list[tuple[IPv4Address, IPv4Address]]:
    return [(IPv4Address(low), IPv4Address(high)) for low, _, high in
            (item.partition("-") for item in filter(None, text.split(",")))]


def settings_from_env(env: os._Environ[str] | dict[str, str] = os.environ) -> NodeSettings:
    addresses = {}
    for item in filter(None, env.get("NATLAB_ADDRESSES", "").split(",")):
        side, _, ip = item.partition("=")
        addresses[side] = IPv4Address(ip)
    routes = []
    for item in filter(None, env.get("NATLAB_ROUTES", "").split(",")):
        dst, _, via = item.partition(" via ")
        routes.append((IPv4Network(dst), IPv4Address(via)))
    aliases = [IPv4Interface(a) for a in filter(None, env.get("NATLAB_ALIASES", "").split(","))]
    return NodeSettings(env.get("NATLAB_NODE", socket.gethostname()), addresses, routes, env.get("NATLAB_NAT"), aliases,
                        env.get("NATLAB_LINK"), _ranges(env.get("NATLAB_RELAY_PEERS", "")))


def node_file(name: str, env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """A file of the node's own: in its run dir where nodes share a filesystem, else under /run."""
    run_dir = env.get(RUN_DIR_ENV)
    return Path(run_dir) / name if run_dir else Path("/run") / f"natlab-{name}"


def private_file(name: str, env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """A secret of the node's own (a key, a config holding one): where nodes share a filesystem, in
    its run dir's private/, a tmpfs only its own mount namespace has (node/mount_ns.py); else under
    /run, which a container has to itself."""
    run_dir = env.get(RUN_DIR_ENV)
    return Path(run_dir) / PRIVATE_DIR / name if run_dir else node_file(name, env)


def ready_file(env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """The file whose presence says the node is ready (READY_FILE in a container)."""
    return node_file("ready", env)
