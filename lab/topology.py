"""The lab's topology as data: the one place that names nodes, networks and addresses.

Everything else is derived from it: compose.yaml (lab/compose_file.py), the environment each
node program reads, the captures to take, and the addresses the verdict checks against.
An engine realises a Topology; nothing downstream hard-codes an address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Network

from lab.nat_presets import DEFAULT_PRESET, validate_preset


class Role(str, Enum):
    BROKER = "broker"
    ROUTER = "router"
    PEER = "peer"
    OUTSIDER = "outsider"


@dataclass(frozen=True)
class Network:
    name: str
    subnet: IPv4Network
    public: bool

    @property
    def reserved_gateway(self) -> IPv4Address:
        """Docker insists on a gateway address; the lab reserves the last one and never assigns it."""
        return self.subnet.broadcast_address - 1


@dataclass(frozen=True)
class Interface:
    network: str
    address: IPv4Address
    side: str  # "wan" or "lan": names the capture taken on it


@dataclass(frozen=True)
class Route:
    destination: IPv4Network
    via: IPv4Address


@dataclass(frozen=True)
class Node:
    name: str
    role: Role
    interfaces: tuple[Interface, ...]
    routes: tuple[Route, ...] = ()
    nat: str | None = None  # routers only: the NAT preset name
    captured: bool = False  # whether the lab captures on this node's interfaces
    aliases: tuple[IPv4Address, ...] = ()  # further addresses on the first interface

    def interface(self, side: str) -> Interface:
        for iface in self.interfaces:
            if iface.side == side:
                return iface
        raise KeyError(f"{self.name} has no {side} interface")

    @property
    def address(self) -> IPv4Address:
        """The node's first address: the one it is known by."""
        return self.interfaces[0].address


@dataclass(frozen=True)
class Pair:
    """A peer behind its router: the unit that hole punching is about."""

    label: str  # "a", "b"
    peer: Node
    router: Node

    @property
    def public_ip(self) -> IPv4Address:
        return self.router.interface("wan").address

    @property
    def private_ip(self) -> IPv4Address:
        return self.peer.address


def _find(items, attr: str, value: str, what: str):
    for item in items:
        if getattr(item, attr) == value:
            return item
    raise KeyError(f"no {what} {value!r}; there are: {', '.join(getattr(i, attr) for i in items)}")


@dataclass(frozen=True)
class Topology:
    project: str
    networks: tuple[Network, ...]
    nodes: tuple[Node, ...]
    broker_port: int = 3478
    broker_alt_port: int = 3479  # RFC 5780: the broker's second port
    private_ranges: tuple[IPv4Network, ...] = field(
        default=(IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"))
    )

    def node(self, name: str) -> Node:
        return _find(self.nodes, "name", name, "node")

    def network(self, name: str) -> Network:
        return _find(self.networks, "name", name, "network")

    def by_role(self, role: Role) -> list[Node]:
        return [n for n in self.nodes if n.role is role]

    @property
    def broker(self) -> Node:
        return self.by_role(Role.BROKER)[0]

    @property
    def outsider(self) -> Node:
        return self.by_role(Role.OUTSIDER)[0]

    @property
    def pairs(self) -> list[Pair]:
        out = []
        for peer in self.by_role(Role.PEER):
            label = peer.name.removeprefix("peer-")
            out.append(Pair(label, peer, self.node(f"router-{label}")))
        return out

    def pair(self, label: str) -> Pair:
        return _find(self.pairs, "label", label, "pair")

    def container_name(self, node: str) -> str:
        return f"{self.project}-{node}"

    def is_private(self, address: str | IPv4Address) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.private_ranges)

    @property
    def captures(self) -> list[tuple[Node, Interface]]:
        """Every vantage point the lab records: (node, interface), in a stable order."""
        return [(n, i) for n in self.nodes if n.captured for i in n.interfaces]

    def to_json(self) -> dict:
        """A plain snapshot written beside each run's captures, so a run can be analysed alone."""
        return {
            "project": self.project,
            "broker_port": self.broker_port,
            "broker_alt_port": self.broker_alt_port,
            "networks": [{"name": n.name, "subnet": str(n.subnet), "public": n.public} for n in self.networks],
            "nodes": [
                {
                    "name": n.name,
                    "role": n.role.value,
                    "nat": n.nat,
                    "captured": n.captured,
                    "aliases": [str(a) for a in n.aliases],
                    "interfaces": [
                        {"network": i.network, "address": str(i.address), "side": i.side} for i in n.interfaces
                    ],
                    "routes": [{"destination": str(r.destination), "via": str(r.via)} for r in n.routes],
                }
                for n in self.nodes
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> Topology:
        return cls(
            project=data["project"],
            broker_port=data["broker_port"],
            broker_alt_port=data.get("broker_alt_port", 3479),
            networks=tuple(Network(n["name"], IPv4Network(n["subnet"]), n["public"]) for n in data["networks"]),
            nodes=tuple(
                Node(
                    name=n["name"],
                    role=Role(n["role"]),
                    nat=n["nat"],
                    captured=n["captured"],
                    aliases=tuple(IPv4Address(a) for a in n.get("aliases", ())),
                    interfaces=tuple(
                        Interface(i["network"], IPv4Address(i["address"]), i["side"]) for i in n["interfaces"]
                    ),
                    routes=tuple(Route(IPv4Network(r["destination"]), IPv4Address(r["via"])) for r in n["routes"]),
                )
                for n in data["nodes"]
            ),
        )


WAN = Network("wan", IPv4Network("198.51.100.0/24"), public=True)
BROKER_IP = IPv4Address("198.51.100.10")
BROKER_ALT_IP = IPv4Address("198.51.100.11")  # RFC 5780 needs a second address
OUTSIDER_IP = IPv4Address("198.51.100.66")

# One row per NAT pair: label, router WAN address, LAN subnet. Router takes .1, peer .10.
PAIR_PLAN = (
    ("a", IPv4Address("198.51.100.101"), IPv4Network("10.0.1.0/24")),
    ("b", IPv4Address("198.51.100.102"), IPv4Network("10.0.2.0/24")),
)


def build_topology(nat_a: str = DEFAULT_PRESET, nat_b: str = DEFAULT_PRESET, project: str = "natlab") -> Topology:
    """The standard lab: a broker and an outsider on the WAN, two peers each behind its own NAT router.

    The outsider is a WAN host with no business in the session: the controls send the unsolicited
    packets from it (it routes each LAN prefix at that LAN's router, as an attacker on the same
    segment could).
    """
    nats = {"a": validate_preset(nat_a), "b": validate_preset(nat_b)}
    networks = [WAN]
    routers, peers = [], []
    for label, wan_ip, lan_subnet in PAIR_PLAN:
        lan = Network(f"lan-{label}", lan_subnet, public=False)
        networks.append(lan)
        router_lan_ip = lan_subnet.network_address + 1
        routers.append(
            Node(
                name=f"router-{label}",
                role=Role.ROUTER,
                interfaces=(Interface(WAN.name, wan_ip, "wan"), Interface(lan.name, router_lan_ip, "lan")),
                nat=nats[label],
                captured=True,
            )
        )
        public_routes = tuple(Route(n.subnet, router_lan_ip) for n in (WAN,))
        peers.append(
            Node(
                name=f"peer-{label}",
                role=Role.PEER,
                interfaces=(Interface(lan.name, lan_subnet.network_address + 10, "lan"),),
                routes=public_routes,
            )
        )
    broker = Node(
        "broker", Role.BROKER, (Interface(WAN.name, BROKER_IP, "wan"),), captured=True, aliases=(BROKER_ALT_IP,)
    )
    outsider = Node(
        "outsider",
        Role.OUTSIDER,
        (Interface(WAN.name, OUTSIDER_IP, "wan"),),
        routes=tuple(
            Route(lan_subnet, wan_ip) for _, wan_ip, lan_subnet in PAIR_PLAN
        ),
    )
    return Topology(
        project=project,
        networks=tuple(networks),
        nodes=(broker, *routers, *peers, outsider),
    )
