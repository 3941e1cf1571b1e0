"""The ladder (sequence) diagram of a run, as data: lanes, one arrow per datagram that matters.

Every lab protocol datagram (any role but "other") is one arrow, from the host that sent it to
the host that received it, or to the router where it stopped: a datagram that reached a router's
WAN on its way in and never its LAN, or its LAN on its way out and never its WAN, was dropped
there. A datagram a router turned back into its LAN (hairpinning) is one arrow, sender to receiver.
The renderers (Mermaid in lab.report.markdown, the picture in lab.report.ladder_png) draw these
arrows and nothing else, so a test can count what they show.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from ipaddress import ip_address
from typing import TYPE_CHECKING

from lab.analysis.packet_roles import PacketRole, stun_summary
from lab.analysis.packets import UDP, protocol_name
from wire.protocol import Ack, Bye, Data, Error, Intro, Message, Ping, Pong, Probe, Register, Waiting

if TYPE_CHECKING:  # types only: the ladder's drawing process (lab.report.ladder_drawer) loads no analysis
    from lab.analysis.journeys import Journey
    from lab.analysis.run import RunView


class Channel(str, Enum):
    """Which way a datagram's role makes it travel: the renderers colour arrows by this."""

    BROKER = "via the broker"
    DIRECT = "direct path"
    RELAY = "via the relay"
    CONTROL = "control experiment"
    OTHER = "other"


CHANNELS = {
    PacketRole.REGISTRATION: Channel.BROKER,
    PacketRole.INTRODUCTION: Channel.BROKER,
    PacketRole.PROBE: Channel.DIRECT,
    PacketRole.DATA: Channel.DIRECT,
    PacketRole.CONTROL: Channel.CONTROL,
    PacketRole.STUN: Channel.OTHER,
    PacketRole.TURN: Channel.RELAY,
    PacketRole.OTHER: Channel.OTHER,
}


@dataclass(frozen=True)
class Lane:
    node: str
    addresses: tuple[str, ...]  # the node's addresses, the broker's with its port


@dataclass(frozen=True)
class Arrow:
    sent: float  # seconds since the run's first packet, first sighting
    arrived: float  # last sighting
    src: str  # lane (node name)
    dst: str  # lane where it ends: its receiver, or the router that dropped it
    role: PacketRole
    what: str  # the message in a few words, without its sequence number
    seq: int | None = None
    dropped: bool = False
    relayed: bool = False  # a lab message the relay carried (inside TURN framing)
    way: Channel | None = None  # a flow's way, from its hosts (flow_ladder); else the role says
    via: str | None = None  # the router that turned it back into its LAN (hairpinning), if one did

    @property
    def channel(self) -> Channel:
        if self.way is not None:
            return self.way
        return Channel.RELAY if self.relayed else CHANNELS[self.role]


@dataclass(frozen=True)
class Step:
    """Consecutive arrows of one kind between the same two lanes: one line of the story."""

    arrows: tuple[Arrow, ...]

    @property
    def first(self) -> Arrow:
        return self.arrows[0]

    @property
    def label(self) -> str:
        whats = list(dict.fromkeys(a.what for a in self.arrows))
        text = " / ".join(whats)
        if len(self.arrows) > 1:
            text += f" ×{len(self.arrows)}"
        seqs = [a.seq for a in self.arrows if a.seq is not None]
        if seqs:
            text += f", seq {seqs[0]}" if len(seqs) == 1 else f", seq {min(seqs)}–{max(seqs)}"
        return text + (", dropped" if self.first.dropped else "") + (
            f", hairpinned by {self.first.via}" if self.first.via else "")


@dataclass(frozen=True)
class Ladder:
    lanes: tuple[Lane, ...]
    arrows: tuple[Arrow, ...]
    introduction: float | None  # when the broker sent its last introduction
    unit: str = "lab datagrams"  # what one arrow is: a lab datagram, or a flow of any program (flow_ladder)

    def steps(self) -> list[Step]:
        """The arrows as the story's lines: consecutive arrows of one role (dropped or not, relayed or
        not) form a phase; within a phase, one step per (sender, receiver), in the order they first appear."""
        out: list[Step] = []
        phase: list[Arrow] = []
        for arrow in [*self.arrows, None]:
            if phase and (arrow is None or _phase(arrow) != _phase(phase[0])):
                lanes = dict.fromkeys((a.src, a.dst) for a in phase)
                out += [Step(tuple(a for a in phase if (a.src, a.dst) == key)) for key in lanes]
                phase = []
            if arrow is not None:
                phase.append(arrow)
        return out


def _phase(arrow: Arrow) -> tuple:
    return (arrow.role, arrow.dropped, arrow.relayed, arrow.way, arrow.via)


def describe(msg: Message | None) -> str:
    """A message in a few words, for an arrow's label."""
    match msg:
        case Register():
            return f"register {msg.peer}"
        case Waiting():
            return "waiting"
        case Intro():
            return f"intro: {msg.partner} at {msg.partner_endpoint}"
        case Error():
            return f"error {msg.code}"
        case Ping() | Pong():
            return f"{msg.TYPE} {msg.tag}"
        case Probe():
            return "probe ack" if msg.ack else "probe"
        case Data():
            return "data"
        case Ack():
            return "ack"
        case Bye():
            return "bye"
    return "?"


def lanes(view: RunView) -> tuple[Lane, ...]:
    """The hosts left to right: the first pair, the WAN hosts, then the other pairs mirrored; a peer
    behind a router already drawn (both peers on one LAN) stands beside the first, inside its router."""
    topo = view.topology
    paired = {n.name for p in topo.pairs for n in (p.peer, *p.routers)}  # every pair's, not only the view's
    first, *others = view.pairs
    order = [first.peer, *first.routers, *(n for n in topo.nodes if n.name not in paired)]
    for pair in others:
        if pair.router is not None and pair.router in order:
            order.insert(order.index(pair.router), pair.peer)
        else:  # behind a carrier already drawn, its router comes from the far side (a public peer: alone)
            order += [*(r for r in reversed(pair.routers) if r not in order), pair.peer]

    def addresses(node) -> tuple[str, ...]:
        port = f":{topo.broker_port}" if node.name == topo.broker.name else ""
        return tuple(f"{i.address}{port}" for i in node.interfaces)

    return tuple(Lane(n.name, addresses(n)) for n in order)


class _Hosts:
    """Which host an address belongs to, and which router a datagram stopped at."""

    def __init__(self, view: RunView) -> None:
        self.view = view
        self.owner = {str(i.address): n.name for n in view.topology.nodes for i in n.interfaces}

    def of(self, address: str) -> str:
        return self.owner.get(address, address)

    def dropped_at(self, trip: Journey) -> str | None:
        """The router a datagram reached on one side and never left on the other, if any."""
        for router in dict.fromkeys(r for pair in self.view.pairs for r in pair.routers):
            lan_net = self.view.topology.network(router.interface("lan").network).subnet
            wan, lan = (trip.at(self.view.vantage(router.name, side)) for side in ("wan", "lan"))
            public = str(router.interface("wan").address)
            inward = wan is not None and (wan.dst == public or ip_address(wan.dst) in lan_net)
            outward = lan is not None and ip_address(lan.src) in lan_net and ip_address(lan.dst) not in lan_net
            if (inward and lan is None) or (outward and wan is None):
                return router.name
        return None


def _with_strangers(known: tuple[Lane, ...], arrows: list[Arrow]) -> tuple[Lane, ...]:
    """The known lanes, then one for each host the arrows name that the topology does not, in order."""
    named = {lane.node for lane in known}
    strangers = dict.fromkeys(x for a in arrows for x in (a.src, a.dst) if x not in named)
    return known + tuple(Lane(s, (s,)) for s in strangers)


def hairpins(view: RunView, trips: list[Journey]) -> dict[int, Journey]:
    """The datagrams a router turned back into its LAN (hairpinning): each journey that ended at a router's
    LAN addressed to the router's own public address (by id), with the journey that then left that LAN
    from the public address with the same payload: two journeys by address, one datagram."""
    from lab.analysis.journeys import WINDOW_S

    public = {(view.vantage(p.edge.name, "lan"), str(p.public_ip)) for p in view.pairs if p.edge}
    returns: dict[tuple[str, bytes], list[Journey]] = {}
    for trip in trips:
        if (trip.first.vantage, trip.first.src) in public:
            returns.setdefault((trip.first.vantage, trip.first.payload), []).append(trip)
    out: dict[int, Journey] = {}
    for trip in trips:
        last = trip.last
        if (last.vantage, last.dst) not in public:
            continue
        back = returns.get((last.vantage, last.payload), [])
        for i, candidate in enumerate(back):
            if 0 <= candidate.first.time - last.time <= WINDOW_S:
                out[id(trip)] = back.pop(i)
                break
    return out


def build_ladder(view: RunView, trips: list[Journey]) -> Ladder:
    hosts = _Hosts(view)
    known = lanes(view)
    arrows = []
    turned = hairpins(view, trips)
    returned = {id(back) for back in turned.values()}
    for trip in trips:
        if trip.role is PacketRole.OTHER or id(trip) in returned:
            continue
        back = turned.get(id(trip))
        stop = None if back else hosts.dropped_at(trip)
        end = back.last if back else trip.last
        msg = trip.first.msg
        arrows.append(Arrow(
            sent=trip.first.time - view.t0,
            arrived=end.time - view.t0,
            src=hosts.of(trip.first.src),
            dst=stop or hosts.of(end.dst),
            role=trip.role,
            what=describe(msg) if msg is not None or trip.role not in (PacketRole.STUN, PacketRole.TURN)
            else stun_summary(trip.first.payload),
            seq=getattr(msg, "seq", None),
            dropped=stop is not None,
            relayed=trip.first.relayed,
            via=hosts.of(trip.last.dst) if back else None,
        ))
    used = {x for a in arrows for x in (a.src, a.dst)}
    wan_host = view.topology.wan_host
    idle = ({wan_host.name} if wan_host else set()) - used  # no lane for an unused WAN host
    intros = view.introductions()
    return Ladder(
        lanes=_with_strangers(tuple(lane for lane in known if lane.node not in idle), arrows),
        arrows=tuple(arrows),
        introduction=max(p.time for p in intros) - view.t0 if intros else None,
    )


def _way(view: RunView, src: str, dst: str) -> Channel:
    """Which way a flow between two hosts went, from the hosts alone (any protocol)."""
    topo = view.topology
    peers = {p.peer.name for p in view.pairs}
    behind = {p.router.name: p.peer.name for p in view.pairs if p.router}  # a flow dropped at a router was for its peer
    src, dst = behind.get(src, src), behind.get(dst, dst)
    relays = {n.name for n in (topo.relay, topo.wan_host) if n}
    if src in peers and dst in peers:
        return Channel.DIRECT
    if src in relays or dst in relays:
        return Channel.RELAY
    if topo.broker.name in (src, dst):
        return Channel.BROKER
    if topo.outsider.name in (src, dst):
        return Channel.CONTROL
    return Channel.OTHER


def _kinds(group: list[Journey], with_relay: bool) -> str:
    """The STUN/TURN messages of a flow, named (a program's own protocol stays unnamed; ChannelData
    only to or from the relay, where its framing means TURN)."""
    from wire.stun import is_channel_data

    names = []
    for t in group:
        if t.first.proto != UDP:
            continue
        if with_relay and is_channel_data(t.first.payload):
            names.append("ChannelData")
        elif t.role in (PacketRole.STUN, PacketRole.TURN):
            names.append(stun_summary(t.first.payload))
    shown = list(dict.fromkeys(names))
    return f" ({', '.join(shown[:4])}{', ...' if len(shown) > 4 else ''})" if shown else ""


def flow_ladder(view: RunView, trips: list[Journey]) -> Ladder:
    """The ladder of a run of any program: one arrow per flow, not per datagram (there may be thousands).
    A flow is the datagrams of one protocol from one host's port to another's, as sent and received
    end to end (through the NATs); its arrow is drawn at its first datagram, and says how many there
    were, how many bytes, and over how long, and the STUN/TURN messages among them by name. Its colour
    is its way: between the peers (direct), through the relay or the WAN host, to the broker."""
    hosts = _Hosts(view)
    relay = view.topology.relay.name if view.topology.relay else None
    groups: dict[tuple, list[Journey]] = {}
    for trip in trips:
        first, last = trip.first, trip.last
        stop = hosts.dropped_at(trip)
        key = (hosts.of(first.src), stop or hosts.of(last.dst), first.proto, first.sport, last.dport, stop is not None)
        groups.setdefault(key, []).append(trip)
    arrows = []
    for (src, dst, proto, sport, dport, dropped), group in groups.items():
        sent = [t.first.time - view.t0 for t in group]
        size = sum(len(t.first.payload) if t.first.payload else t.first.length for t in group)
        ports = f" {sport}→{dport}" if sport is not None else ""
        span = f" over {max(sent) - min(sent):.2f}s" if len(group) > 1 else ""
        arrows.append(Arrow(
            sent=min(sent), arrived=group[0].last.time - view.t0, src=src, dst=dst, role=group[0].role,
            what=f"{protocol_name(proto)}{ports}{_kinds(group, relay in (src, dst))}: {len(group)} × {size} B{span}",
            dropped=dropped,
            way=_way(view, src, dst),
        ))
    arrows.sort(key=lambda a: a.sent)
    used = {x for a in arrows for x in (a.src, a.dst)} | {p.peer.name for p in view.pairs}
    known = tuple(lane for lane in lanes(view) if lane.node in used)
    return Ladder(lanes=_with_strangers(known, arrows), arrows=tuple(arrows), introduction=None, unit="flows")
