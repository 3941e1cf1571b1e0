"""A node's network as the lab wants it: its further addresses, the lab's routes and no other way out.

Whatever default route the engine installed (Docker's gateway) is removed, so `ip route get
192.0.2.1` fails on every node. Uses pyroute2, runs inside the node.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network

from node.settings import NodeSettings

OFF_LAB_PROBE = "192.0.2.1"  # TEST-NET-1: only ever looked up in the routing table, never sent to


def interfaces_for(addresses: list[IPv4Address], ipr=None) -> dict[IPv4Address, str]:
    """The names of the interfaces that hold `addresses` (engines do not promise interface order)."""
    with netlink(ipr) as ipr:
        index = {msg.get_attr("IFA_ADDRESS"): msg["index"] for msg in ipr.get_addr(family=socket.AF_INET)}
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    missing = [str(a) for a in addresses if str(a) not in index]
    if missing:
        raise LookupError(f"no interface holds {', '.join(missing)}")
    return {a: names[index[str(a)]] for a in addresses}


def subnet_of(address: IPv4Address, ipr=None) -> IPv4Network:
    """The subnet of the interface address `address` (its prefix as configured)."""
    with netlink(ipr) as ipr:
        for msg in ipr.get_addr(family=socket.AF_INET):
            if msg.get_attr("IFA_ADDRESS") == str(address):
                return IPv4Network(f"{address}/{msg['prefixlen']}", strict=False)
    raise LookupError(f"no interface holds {address}")


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
    from node.netlink_batch import Batch

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
