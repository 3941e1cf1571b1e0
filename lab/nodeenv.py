"""What runs first inside every lab node: read the node's settings, fix its routes, report ready.

An engine starts each node with a few NATLAB_* environment variables derived from the topology
(see lab/node_spec.py). This module turns them into a node whose only ways out are the lab's
own routes: whatever default route the engine installed (Docker's gateway) is removed, so
`ip route get 192.0.2.1` fails on every node. Uses pyroute2, runs inside the node.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

READY_FILE = Path("/run/natlab-ready")  # where a node that has a filesystem of its own reports ready
RUN_DIR_ENV = "NATLAB_RUN_DIR"  # a node's own directory, where nodes share one filesystem (netns engine)
OFF_LAB_PROBE = "192.0.2.1"  # TEST-NET-1: only ever looked up in the routing table, never sent to


@dataclass(frozen=True)
class NodeSettings:
    name: str
    addresses: dict[str, IPv4Address]  # side ("wan"/"lan") -> address
    routes: list[tuple[IPv4Network, IPv4Address]]
    nat: str | None
    aliases: list[IPv4Interface] = field(default_factory=list)  # extra addresses on the first interface


def encode_addresses(addresses: dict[str, IPv4Address]) -> str:
    return ",".join(f"{side}={ip}" for side, ip in addresses.items())


def encode_aliases(aliases: list[IPv4Interface]) -> str:
    return ",".join(str(a) for a in aliases)


def encode_routes(routes: list[tuple[IPv4Network, IPv4Address]]) -> str:
    return ",".join(f"{dst} via {via}" for dst, via in routes)


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
    return NodeSettings(env.get("NATLAB_NODE", socket.gethostname()), addresses, routes, env.get("NATLAB_NAT"), aliases)


def interfaces_for(addresses: list[IPv4Address], ipr=None) -> dict[IPv4Address, str]:
    """The names of the interfaces that hold `addresses` (engines do not promise interface order)."""
    with netlink(ipr) as ipr:
        index = {msg.get_attr("IFA_ADDRESS"): msg["index"] for msg in ipr.get_addr(family=socket.AF_INET)}
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    missing = [str(a) for a in addresses if str(a) not in index]
    if missing:
        raise LookupError(f"no interface holds {', '.join(missing)}")
    return {a: names[index[str(a)]] for a in addresses}


def interface_for(address: IPv4Address) -> str:
    return interfaces_for([address])[address]


@contextmanager
def netlink(ipr=None) -> Iterator:
    """The caller's netlink socket, or one of our own for the block (each one costs ~1 ms to open)."""
    if ipr is not None:
        yield ipr
        return
    from pyroute2 import IPRoute

    with IPRoute() as own:
        yield own


def set_routes(routes: list[tuple[IPv4Network, IPv4Address]], ipr=None) -> None:
    """Drop every gatewayed route (the engine's default route) and install the lab's routes."""
    from lab.netlink_batch import Batch

    with netlink(ipr) as ipr:
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            gateway = r.get_attr("RTA_GATEWAY")
            if gateway:
                dst = r.get_attr("RTA_DST") or "0.0.0.0"
                ipr.route("del", table=254, dst=f"{dst}/{r['dst_len']}", gateway=gateway)
    batch = Batch()  # the outsider routes to every LAN: a big lab gives it hundreds
    for dst, via in routes:
        batch.route("replace", dst=str(dst), gateway=str(via))
    batch.send()


def has_off_lab_route(ipr=None) -> bool:
    """True if the routing table would send a packet to an address outside the lab."""
    from pyroute2.netlink.exceptions import NetlinkError

    with netlink(ipr) as ipr:
        try:
            ipr.route("get", dst=OFF_LAB_PROBE)
        except NetlinkError:
            return False
    return True


def add_aliases(settings: NodeSettings, ipr=None) -> None:
    """Give the first interface its further addresses (engines assign one address per network)."""
    if not settings.aliases:
        return
    first = next(iter(settings.addresses.values()))
    with netlink(ipr) as ipr:
        index = ipr.link_lookup(ifname=interfaces_for([first], ipr)[first])[0]
        for alias in settings.aliases:
            ipr.addr("replace", index=index, address=str(alias.ip), prefixlen=alias.network.prefixlen)


def prepare(settings: NodeSettings, ipr=None) -> None:
    with netlink(ipr) as ipr:
        add_aliases(settings, ipr)
        set_routes(settings.routes, ipr)
        if has_off_lab_route(ipr):
            raise SystemExit(f"{settings.name}: still has a route to {OFF_LAB_PROBE} after route setup")


def node_file(name: str, env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """A file of the node's own: in its run dir where nodes share a filesystem, else under /run."""
    run_dir = env.get(RUN_DIR_ENV)
    return Path(run_dir) / name if run_dir else Path("/run") / f"natlab-{name}"


def ready_file(env: os._Environ[str] | dict[str, str] = os.environ) -> Path:
    """The file whose presence says the node is ready (READY_FILE in a container)."""
    return node_file("ready", env)


def mark_ready() -> None:
    ready_file().write_text("ready\n")


def wait_for_stop() -> None:
    """Block until the engine stops the node (SIGTERM) or someone presses Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass


def main() -> None:
    """Entry point of nodes that only need their network: peers and the outsider."""
    settings = settings_from_env()
    prepare(settings)
    mark_ready()
    print(f"{settings.name}: ready, routes {encode_routes(settings.routes) or '(connected only)'}", flush=True)
    wait_for_stop()


if __name__ == "__main__":
    main()
