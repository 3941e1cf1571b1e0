"""The lab's topology as data: the one place that names nodes, networks and addresses.

Everything else is derived from it: compose.yaml (lab/engines/docker/compose_file.py), the environment each
node program reads, the captures to take, and the addresses the verdict checks against.
An engine realises a Topology; nothing downstream hard-codes an address.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from ipaddress import IPv4Address, IPv4Network

from nat.behaviour import DEFAULT_PRESET, validate_preset
from node.link import DEFAULT_LINK, validate_link


class NodeRole(str, Enum):
    BROKER = "broker"
    ROUTER = "router"
    PEER = "peer"
    OUTSIDER = "outsider"
    RELAY = "relay"
    WAN_HOST = "wan-host"  # a public host for the user's WAN program (make run WAN=): rendezvous, relay, server


# The nodes where `make run` runs the user's programs: every peer (A, B) and the WAN host (WAN).
PROGRAM_ROLES = (NodeRole.PEER, NodeRole.WAN_HOST)
# The nodes that keep a secret of their own (the broker's key, the relay's TURN secret): where nodes
# share a filesystem (netns), these get a mount namespace where their secrets are theirs alone.
SECRET_ROLES = (NodeRole.BROKER, NodeRole.RELAY)


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
    role: NodeRole
    interfaces: tuple[Interface, ...]
    routes: tuple[Route, ...] = ()
    nat: str | None = None  # routers only: the NAT preset name
    link: str | None = None  # routers and the broker: the access link's condition (node/link.py)
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

    @property
    def addresses(self) -> tuple[IPv4Address, ...]:
        """Every address the node answers on: its interfaces', then its aliases."""
        return (*(i.address for i in self.interfaces), *self.aliases)


@dataclass(frozen=True)
class Pair:
    """A peer behind its router (and, in the cgnat shape, that router behind a carrier's), or on the internet
    itself (public-peer): the unit that hole punching is about."""

    label: str  # "a", "b"; with more punch pairs "a2", "b2", ...: unique in the lab
    peer: Node
    router: Node | None  # the peer's own router: its LAN's gateway, the NAT nearest the peer; None: no NAT
    carrier: Node | None = None  # the carrier-grade NAT the router sits behind (cgnat), if any

    @property
    def edge(self) -> Node | None:
        """The router whose WAN is the internet: the carrier's where there is one, else the peer's own (None for
        a peer with no NAT)."""
        return self.carrier or self.router

    @property
    def routers(self) -> tuple[Node, ...]:
        """The NATs between the peer and the internet, the peer's own first (none for a public peer)."""
        return tuple(r for r in (self.router, self.carrier) if r)

    @property
    def edge_name(self) -> str:
        """What stands at the pair's public address: its edge router, or the public peer itself."""
        return (self.edge or self.peer).name

    @property
    def segment(self) -> str:
        """The public segment (network name) the pair reaches the internet on."""
        return self.peer.interfaces[0].network if self.edge is None else self.edge.interface("wan").network

    @property
    def side(self) -> str:
        """Which side of its punch pair this is: "a" or "b"."""
        return self.label[0]

    @property
    def number(self) -> int:
        """The punch pair it belongs to, from 1."""
        return int(self.label[1:] or 1)

    @property
    def public_ip(self) -> IPv4Address:
        return self.peer.address if self.edge is None else self.edge.interface("wan").address

    @property
    def private_ip(self) -> IPv4Address:
        return self.peer.address


@dataclass(frozen=True)
class PunchPair:
    """Two NATed peers that punch to each other: what PAIRS=N counts (each pair: two routers, two peers)."""

    number: int
    a: Pair
    b: Pair

    @property
    def sides(self) -> tuple[Pair, Pair]:
        return (self.a, self.b)

    @property
    def same_lan(self) -> bool:
        """Both peers behind one router, on one LAN (the same-lan shape): their direct path is local."""
        return self.a.router is not None and self.a.router == self.b.router

    @property
    def shares_edge(self) -> bool:
        """Both sides behind one public address (same-lan's router, cgnat's carrier): their direct path is
        turned back by that router (hairpinning) and never reaches its WAN."""
        return self.a.edge_name == self.b.edge_name

    @property
    def shape(self) -> str:
        """The pair's shape (SHAPES), read from its wiring."""
        if self.same_lan:
            return SAME_LAN
        if self.a.carrier and self.shares_edge:
            return CGNAT
        if self.a.carrier:
            return CGNAT_APART if self.b.carrier else CGNAT_A
        return PUBLIC_PEER if self.b.router is None else STANDARD

    @property
    def name(self) -> str:
        return f"pair {self.number}"


def pairs_by_router(pairs: list[Pair]) -> list[list[Pair]]:
    """The pairs grouped by their own router (a same-lan router has two), in the pairs' order."""
    return [behind for router, behind in pairs_behind(pairs) if router == behind[0].router]


def pairs_behind(pairs: list[Pair]) -> list[tuple[Node, list[Pair]]]:
    """Every router the pairs sit behind, their own and their carriers', each with its pairs, in the pairs'
    order (a carrier after the first router behind it)."""
    groups: dict[str, tuple[Node, list[Pair]]] = {}
    for pair in pairs:
        for router in pair.routers:
            groups.setdefault(router.name, (router, []))[1].append(pair)
    return list(groups.values())


def vantage_name(node: str, side: str) -> str:
    """A capture point's name, and its pcap's: <node>-<side> (router-a-wan). Built here only."""
    return f"{node}-{side}"


def pair_label(side: str, number: int) -> str:
    """Pair 1 keeps today's labels ("a", "b"); pair k > 1 is "a<k>", "b<k>" (Pair.side/.number read them back)."""
    return side if number == 1 else f"{side}{number}"


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
        default=(IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"),
                 IPv4Network("100.64.0.0/10"))  # RFC 1918, and RFC 6598's shared space behind carrier NATs
    )

    # Indexes made once per topology (it is frozen): a big lab's analysis asks thousands of times.
    @cached_property
    def _nodes(self) -> dict[str, Node]:
        return {n.name: n for n in reversed(self.nodes)}  # the first of a name wins, as in _find

    @cached_property
    def _networks(self) -> dict[str, Network]:
        return {n.name: n for n in reversed(self.networks)}

    @cached_property
    def _roles(self) -> dict[NodeRole, tuple[Node, ...]]:
        return {role: tuple(n for n in self.nodes if n.role is role) for role in NodeRole}

    @cached_property
    def _pairs(self) -> tuple[Pair, ...]:
        """Each peer with its router: the router on the peer's LAN (two peers of a same-lan pair share one)."""
        gateways = {i.network: n for n in self.by_role(NodeRole.ROUTER) for i in n.interfaces if i.side == "lan"}

        def pair_of(peer: Node) -> Pair:
            router = gateways.get(peer.interfaces[0].network)  # none for a peer on a public segment
            carrier = router and gateways.get(router.interface("wan").network)
            return Pair(peer.name.removeprefix("peer-"), peer, router, carrier)

        return tuple(pair_of(peer) for peer in self.by_role(NodeRole.PEER))

    @cached_property
    def _private(self) -> dict[str, bool]:
        return {}  # address -> is_private, filled as asked

    def node(self, name: str) -> Node:
        return self._nodes.get(name) or _find(self.nodes, "name", name, "node")

    def network(self, name: str) -> Network:
        return self._networks.get(name) or _find(self.networks, "name", name, "network")

    def by_role(self, role: NodeRole) -> list[Node]:
        return list(self._roles[role])

    @property
    def broker(self) -> Node:
        return self.by_role(NodeRole.BROKER)[0]

    @property
    def outsider(self) -> Node:
        return self.by_role(NodeRole.OUTSIDER)[0]

    @property
    def relay(self) -> Node | None:
        """The TURN relay (None in a run recorded before the lab had one)."""
        relays = self.by_role(NodeRole.RELAY)
        return relays[0] if relays else None

    @property
    def wan_host(self) -> Node | None:
        """The public host of the user's WAN program (None in a run recorded before the lab had one)."""
        hosts = self.by_role(NodeRole.WAN_HOST)
        return hosts[0] if hosts else None

    def address_facing(self, node: Node, pair: Pair) -> IPv4Address:
        """`node`'s address on the pair's own public segment, where the pair reaches it (the relay's, the
        WAN host's); its first address if it has none there."""
        segment = pair.segment
        return next((i.address for i in node.interfaces if i.network == segment), node.address)

    def relay_peer_ranges(self) -> list[tuple[IPv4Address, IPv4Address]]:
        """The addresses the relay may relay to: every public address but the broker's, the outsider's and
        the WAN host's (routers' and its own), as ranges."""
        excluded = {a for n in self.nodes if n.role in (NodeRole.BROKER, NodeRole.OUTSIDER, NodeRole.WAN_HOST)
                    for a in n.addresses}
        ranges: list[tuple[IPv4Address, IPv4Address]] = []
        for network in self.public_networks:
            for ip in network.subnet.hosts():
                if ip in excluded:
                    continue
                if ranges and int(ranges[-1][1]) + 1 == int(ip):
                    ranges[-1] = (ranges[-1][0], ip)
                else:
                    ranges.append((ip, ip))
        return ranges

    @property
    def pairs(self) -> list[Pair]:
        return list(self._pairs)

    @cached_property
    def _partners(self) -> dict[str, Pair]:
        return {side.label: other for pp in self.punch_pairs for side, other in ((pp.a, pp.b), (pp.b, pp.a))}

    def partner(self, pair: Pair) -> Pair:
        """The other side of the pair's punch pair."""
        return self._partners[pair.label]

    def same_lan(self, pair: Pair) -> bool:
        """Whether the pair's partner sits behind its router too (the same-lan shape)."""
        return pair.router is not None and self.partner(pair).router == pair.router

    def shares_edge(self, pair: Pair) -> bool:
        """Whether the pair's partner sits behind the same public address (same-lan, cgnat)."""
        return self.partner(pair).edge_name == pair.edge_name

    def pair(self, label: str) -> Pair:
        return _find(self.pairs, "label", label, "pair")

    @property
    def punch_pairs(self) -> list[PunchPair]:
        """The pairs of sides that punch to each other, by number."""
        sides: dict[int, dict[str, Pair]] = {}
        for pair in self.pairs:
            sides.setdefault(pair.number, {})[pair.side] = pair
        return [PunchPair(n, s["a"], s["b"]) for n, s in sorted(sides.items())]

    @property
    def public_networks(self) -> list[Network]:
        return [n for n in self.networks if n.public]

    def is_public(self, iface: Interface) -> bool:
        """Whether an interface sits on a public segment (a capture point on "the internet")."""
        return self.network(iface.network).public

    def container_name(self, node: str) -> str:
        return f"{self.project}-{node}"

    def is_private(self, address: str | IPv4Address) -> bool:
        key = str(address)
        private = self._private.get(key)
        if private is None:
            ip = ipaddress.ip_address(address)
            private = self._private[key] = any(ip in net for net in self.private_ranges)
        return private

    @property
    def captures(self) -> list[tuple[Node, Interface]]:
        """Every vantage point the lab records: (node, interface), in a stable order."""
        return [(n, i) for n in self.nodes if n.captured for i in n.interfaces]

    @property
    def vantages(self) -> dict[str, tuple[Node, Interface]]:
        """Every vantage point by its name (vantage_name), in the order of `captures`."""
        return {vantage_name(n.name, i.side): (n, i) for n, i in self.captures}

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
                    **({"link": n.link} if n.link else {}),
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
                    role=NodeRole(n["role"]),
                    nat=n["nat"],
                    link=n.get("link"),
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


class TopologyError(ValueError):
    """A topology that cannot be built (bad size or name); the CLI prints it without a traceback."""


WAN = Network("wan", IPv4Network("198.51.100.0/24"), public=True)
WAN2 = Network("wan2", IPv4Network("203.0.113.0/24"), public=True)  # the second segment, used from PAIRS=2 on
PUBLIC_SEGMENTS = (WAN, WAN2)
BROKER_IP = IPv4Address("198.51.100.10")
BROKER_ALT_IP = IPv4Address("198.51.100.11")  # RFC 5780 needs a second address
OUTSIDER_IP = IPv4Address("198.51.100.66")
RELAY_IP = IPv4Address("198.51.100.20")
TURN_PORT = 3478  # the relay's TURN port (relay/turn_server.py listens on it)
BROKER_HOST, OUTSIDER_HOST, RELAY_HOST, WAN_HOST_HOST = 10, 66, 20, 30  # the same host number on every public segment
FIRST_ROUTER_HOST = 101  # routers fill a segment from .101 up, then from its bottom
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")


def _host(network: Network, number: int) -> IPv4Address:
    return network.subnet.network_address + number


def router_addresses(segment: Network) -> list[IPv4Address]:
    """The addresses a segment has for routers, in the order they are handed out (pair 1 gets .101, .102)."""
    taken = {*(_host(segment, h) for h in (BROKER_HOST, OUTSIDER_HOST, RELAY_HOST, WAN_HOST_HOST)), BROKER_ALT_IP,
             segment.reserved_gateway}
    free = [ip for ip in segment.subnet.hosts() if ip not in taken]
    first = _host(segment, FIRST_ROUTER_HOST)
    return [ip for ip in free if ip >= first] + [ip for ip in free if ip < first]


MAX_PAIRS = len(PUBLIC_SEGMENTS) * min(len(router_addresses(s)) // 2 for s in PUBLIC_SEGMENTS)


@dataclass(frozen=True)
class SidePlan:
    """Where one side of a punch pair lives: its router's public segment and address, its LAN."""

    label: str
    segment: Network
    wan_ip: IPv4Address
    lan: IPv4Network
    number: int  # the punch pair's
    side: str  # "a" or "b"


def pair_plan(pairs: int) -> list[SidePlan]:
    """The address plan of `pairs` punch pairs. Pair k sits on public segment (k-1) mod 2, both its routers
    on the same one (the direct path never crosses the broker); LAN number i (1, 2, ... in pair order) is
    10.<i // 256>.<i % 256>.0/24, so pair 1 is today's lab: a on 10.0.1.0/24 behind .101, b on 10.0.2.0/24
    behind .102."""
    if not 1 <= pairs <= MAX_PAIRS:
        raise TopologyError(f"PAIRS must be between 1 and {MAX_PAIRS} (the public segments' addresses), not {pairs}")
    pools = {s.name: router_addresses(s) for s in PUBLIC_SEGMENTS}
    plan = []
    for number in range(1, pairs + 1):
        segment = PUBLIC_SEGMENTS[(number - 1) % len(PUBLIC_SEGMENTS)]
        for offset, side in enumerate("ab"):
            lan_number = 2 * (number - 1) + offset + 1
            lan = IPv4Network(f"10.{lan_number // 256}.{lan_number % 256}.0/24")
            wan_ip = pools[segment.name][2 * ((number - 1) // len(PUBLIC_SEGMENTS)) + offset]
            plan.append(SidePlan(pair_label(side, number), segment, wan_ip, lan, number, side))
    return plan


STANDARD, SAME_LAN, CGNAT, PUBLIC_PEER = "standard", "same-lan", "cgnat", "public-peer"
CGNAT_A, CGNAT_APART = "cgnat-a", "cgnat-apart"
SHAPES = {
    STANDARD: "each peer behind a router of its own, the two routers on one public segment",
    SAME_LAN: "both peers on one LAN behind one router (side a's NAT and link): their direct path is local",
    CGNAT: "each peer behind its home router, both home routers behind one carrier NAT (NAT_CARRIER, 100.64.0.0/10 "
           "inside): they meet only through the carrier's hairpin",
    PUBLIC_PEER: "peer a behind its router, peer b on the internet with a public address and no NAT (NAT_B and "
                 "LINK_B unused)",
    CGNAT_A: "peer a's home router behind a carrier NAT of its own (NAT_CARRIER), peer b's on the internet: a phone "
             "on a mobile carrier and a home",
    CGNAT_APART: "each home router behind a carrier NAT of its own (NAT_CARRIER each): two mobile carriers",
}
# The shapes where a side's home router sits behind a carrier of its own (not shared with its partner).
OWN_CARRIER_SIDES = {CGNAT_A: ("a",), CGNAT_APART: ("a", "b")}
# The shapes whose b side has no NAT of its own: a matrix row's one column says where b is instead.
ONE_NAT_COLUMNS = {PUBLIC_PEER: "no NAT", SAME_LAN: "on a's LAN"}
# A carrier-grade NAT as RFC 6888 asks: endpoint-independent mapping, a block of ports per subscriber
# (REQ-14, so that one subscriber cannot exhaust the others' ports), and hairpinning (its subscribers
# reach each other's public endpoints); cone filtering, as carriers mostly run it.
CARRIER_PRESET = "full-cone,ports=block,hairpin=on"
CARRIER_SPACE = IPv4Network("100.64.0.0/10")  # RFC 6598: between the home routers and the carrier NAT


def validate_shape(shape: str) -> str:
    if shape not in SHAPES:
        raise TopologyError(f"TOPOLOGY must be one of {', '.join(SHAPES)} or a .toml file, not {shape!r}")
    return shape


@dataclass(frozen=True)
class PairSettings:
    """One punch pair's own settings: each side's NAT and access link (a matrix cell), and its shape
    (SHAPES: same-lan puts both peers behind side a's router, whose NAT and link it keeps)."""

    nat_a: str = DEFAULT_PRESET
    nat_b: str = DEFAULT_PRESET
    link_a: str = DEFAULT_LINK
    link_b: str = DEFAULT_LINK
    shape: str = STANDARD
    nat_carrier: str = CARRIER_PRESET  # the carrier NATs' (cgnat shapes only)

    def nat(self, side: str) -> str:
        return self.nat_a if side == "a" else self.nat_b

    def link(self, side: str) -> str:
        return self.link_a if side == "a" else self.link_b

    def validated(self) -> PairSettings:
        return PairSettings(validate_preset(self.nat_a), validate_preset(self.nat_b),
                            validate_link(self.link_a), validate_link(self.link_b), validate_shape(self.shape),
                            validate_preset(self.nat_carrier))


def carrier_name(number: int) -> str:
    """Punch pair `number`'s carrier NAT (cgnat): "carrier", then "carrier2", ... as pair labels go."""
    return "carrier" if number == 1 else f"carrier{number}"


def carrier_network(number: int) -> Network:
    """Punch pair `number`'s carrier segment: 100.64.<number>.0/24 (the home routers' WAN, the carrier's LAN)."""
    host = CARRIER_SPACE.network_address + 256 * number
    return Network(f"{carrier_name(number)}-net", IPv4Network(f"{host}/24"), public=False)


OWN_CARRIERS = IPv4Network("100.65.0.0/16")  # within CARRIER_SPACE, beside the shared carriers' 100.64.0.0/16


def own_carrier_network(side: SidePlan) -> Network:
    """The segment behind one side's own carrier (cgnat-a, cgnat-apart): 100.65.0.0/16 counted as its LAN is
    counted in 10.0.0.0/8 (lan-a: 10.0.1.0/24, carrier-a-net: 100.65.1.0/24)."""
    number = (int(side.lan.network_address) - int(IPv4Address("10.0.0.0"))) >> 8
    host = OWN_CARRIERS.network_address + 256 * number
    return Network(f"carrier-{side.label}-net", IPv4Network(f"{host}/24"), public=False)


CARRIER_HOST, HOME_ROUTER_HOSTS = 1, {"a": 101, "b": 102}  # on a carrier segment


def build_topology(
    nat_a: str = DEFAULT_PRESET, nat_b: str = DEFAULT_PRESET, project: str = "natlab", pairs: int = 1,
    link_a: str = DEFAULT_LINK, link_b: str = DEFAULT_LINK, link_broker: str = DEFAULT_LINK,
    pair_settings: tuple[PairSettings, ...] | None = None, shape: str = STANDARD,
    nat_carrier: str = CARRIER_PRESET,
) -> Topology:
    """The standard lab: a broker and an outsider on the WAN, `pairs` punch pairs of peers each behind its
    own NAT router, every pair's a side with `nat_a` and `link_a` and its b side with `nat_b` and
    `link_b`; or, with `pair_settings`, one pair for each, with its own (the matrix's cells).
    `shape` (SHAPES) is every pair's shape in the shorthand. A same-lan pair keeps side a's router, LAN and
    addresses; its peer b joins that LAN (.11), and both peers are captured, since what they send each
    other on their LAN never reaches the router's captures. A cgnat pair's two home routers sit on a carrier
    segment (carrier_network) behind the carrier NAT (`nat_carrier`), which takes side a's public address. A
    public-peer pair's peer b takes its router's place on the public segment: no NAT, captured on its own.
    PAIRS=1 is the lab of the README; more pairs add a second public segment, where the
    broker and the outsider get an address too (routers there reach the broker's first addresses through
    it: it answers for them, it forwards nothing).

    The relay is a TURN server on the WAN, the peers' fallback when no hole opens. The WAN host is
    where `make run WAN=...` runs the user's own rendezvous or relay; idle otherwise.
    The outsider is a WAN host with no business in the session: the controls send the unsolicited
    packets from it (it routes each LAN prefix at that LAN's router, as an attacker on the same
    segment could).
    """
    if not PROJECT_NAME.match(project):
        raise TopologyError(f"project name {project!r}: 1-20 of a-z, 0-9 and '-', starting with a letter or digit")
    if pair_settings is None:  # the shorthand: every pair the same
        pair_settings = (PairSettings(nat_a, nat_b, link_a, link_b, shape, nat_carrier),) * pairs
    settings = [s.validated() for s in pair_settings]
    validate_link(link_broker)
    plan = pair_plan(len(settings))
    segments = [s for s in PUBLIC_SEGMENTS if any(side.segment == s for side in plan)]
    broker_on = {s.name: _host(s, BROKER_HOST) for s in segments}
    broker_addresses = (BROKER_IP, BROKER_ALT_IP)
    networks = list(segments)
    routers, peers = [], []
    own_lans = {}  # side label -> the LAN it sits on and that LAN's router's address (a same-lan b: a's)
    carriers: dict[int | str, Network] = {}  # cgnat: pair number -> the shared carrier segment; side label -> its own
    for side in plan:
        pair_settings_of = settings[side.number - 1]
        to_broker = tuple(
            Route(IPv4Network(f"{ip}/32"), broker_on[side.segment.name])
            for ip in broker_addresses if ip not in side.segment.subnet
        )
        wan = Interface(side.segment.name, side.wan_ip, "wan")
        upstream = to_broker  # the router's routes beyond its WAN's own subnet
        own_carrier = side.side in OWN_CARRIER_SIDES.get(pair_settings_of.shape, ())
        if pair_settings_of.shape == CGNAT or own_carrier:
            if own_carrier or side.side == "a":  # the carrier NAT, on the side's (shared: side a's) public address
                net = own_carrier_network(side) if own_carrier else carrier_network(side.number)
                carriers[side.label if own_carrier else side.number] = net
                networks.append(net)
                name = f"carrier-{side.label}" if own_carrier else carrier_name(side.number)
                routers.append(Node(name, NodeRole.ROUTER, (wan, Interface(net.name, _host(net, CARRIER_HOST), "lan")),
                                    to_broker, nat=pair_settings_of.nat_carrier, captured=True))
            net = carriers[side.label if own_carrier else side.number]
            wan = Interface(net.name, _host(net, HOME_ROUTER_HOSTS[side.side]), "wan")
            upstream = tuple(Route(n.subnet, _host(net, CARRIER_HOST)) for n in segments)
        if pair_settings_of.shape == PUBLIC_PEER and side.side == "b":  # on the internet, where its router would be
            peers.append(Node(name=f"peer-{side.label}", role=NodeRole.PEER, interfaces=(wan,), routes=to_broker,
                              captured=True))
            continue
        if pair_settings_of.shape == SAME_LAN and side.side == "b":
            lan, router_lan_ip = own_lans[pair_label("a", side.number)]
            peers.append(Node(name=f"peer-{side.label}", role=NodeRole.PEER,
                              interfaces=(Interface(lan.name, lan.subnet.network_address + 11, "lan"),),
                              routes=tuple(Route(n.subnet, router_lan_ip) for n in segments), captured=True))
            continue
        lan = Network(f"lan-{side.label}", side.lan, public=False)
        networks.append(lan)
        router_lan_ip = side.lan.network_address + 1
        own_lans[side.label] = (lan, router_lan_ip)
        routers.append(
            Node(
                name=f"router-{side.label}",
                role=NodeRole.ROUTER,
                interfaces=(wan, Interface(lan.name, router_lan_ip, "lan")),
                routes=upstream,
                nat=settings[side.number - 1].nat(side.side),
                link=settings[side.number - 1].link(side.side),
                captured=True,
            )
        )
        public_routes = tuple(Route(n.subnet, router_lan_ip) for n in segments)
        peers.append(
            Node(
                name=f"peer-{side.label}",
                role=NodeRole.PEER,
                interfaces=(Interface(lan.name, side.lan.network_address + 10, "lan"),),
                routes=public_routes,
                captured=pair_settings_of.shape == SAME_LAN,
            )
        )

    def on_every_segment(host: int) -> tuple[Interface, ...]:
        return tuple(Interface(s.name, _host(s, host), s.name) for s in segments)

    broker = Node("broker", NodeRole.BROKER, on_every_segment(BROKER_HOST), captured=True, aliases=(BROKER_ALT_IP,),
                  link=link_broker)
    # The TURN relay (coturn): on every segment, as the broker, so that every router reaches it directly.
    relay = Node("relay", NodeRole.RELAY, on_every_segment(RELAY_HOST), captured=True)
    wan_host = Node("wan-host", NodeRole.WAN_HOST, on_every_segment(WAN_HOST_HOST), captured=True)
    outsider = Node(
        "outsider",
        NodeRole.OUTSIDER,
        on_every_segment(OUTSIDER_HOST),
        # A cgnat LAN is routed at its carrier, the only public address in front of it.
        routes=tuple(Route(side.lan, side.wan_ip if side.number not in carriers else
                           next(p.wan_ip for p in plan if p.number == side.number and p.side == "a"))
                     for side in plan if side.label in own_lans),
    )
    return Topology(
        project=project,
        networks=tuple(networks),
        nodes=(broker, relay, wan_host, *routers, *peers, outsider),
    )


def wiring(topology: Topology) -> Topology:
    """The topology's nodes and networks with the default NAT and link settings: what compose.yaml holds (a
    lab's own settings reach compose through the environment), so that the file depends on name, size and
    shape only."""
    return build_topology(project=topology.project,
                          pair_settings=tuple(PairSettings(shape=pp.shape) for pp in topology.punch_pairs))
