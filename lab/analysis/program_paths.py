"""Which path a user's programs took, from the pcaps alone and without knowing their protocol.

Every IP datagram that reached a peer (the last capture before it, RunView.at_peer, towards the
peer's private address) is placed by where it came from:
- `direct`: from the partner's router's public address (any port, any protocol): the two NATs
  let the programs' traffic through to each other (or, for peers on one LAN, their router hairpinned it);
- `local`: from the partner's private address: the two share a LAN and talk with no NAT between;
- `relayed`: from the relay, carrying data for the peer: from one of its allocations (a relayed
  address: the partner's data, as they left the relay), or from its TURN port inside a ChannelData
  or Data indication (TURN's own control there, Allocate, Refresh and the rest, is signalling);
  or from the WAN host (the user's WAN program) carrying what the partner sent it: a datagram
  that ends in the last FINGERPRINT bytes of one the partner sent to the WAN host (a WAN program
  that transforms what it forwards is counted as signalling);
- `signalling`: from the broker (STUN, rendezvous), the relay's TURN control, or the WAN host's own
  messages;
- `other`: anything else.
The answer for a pair: `direct` (or `local`, whichever carried more) when peer-to-peer datagrams,
direct or local, reached both peers and, from the moment the later of the two first arrived, carried
at least as many bytes as the relay did; `relayed` when relayed data reached both peers and the
peer-to-peer path did not win; `none` otherwise. Beside it: when the first peer-to-peer datagram
arrived each way, and the bytes of each path per second.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lab.analysis.packets import Packet
from lab.analysis.run import RunView
from lab.topology import TURN_PORT, Node, NodeRole, Pair, PunchPair

DIRECT, LOCAL, RELAYED, SIGNALLING, OTHER = "direct", "local", "relayed", "signalling", "other"
NONE = "none"
PEER_TO_PEER = (DIRECT, LOCAL)  # the paths with nothing but NATs (or nothing at all) between the programs
DELIVERING = (DIRECT, LOCAL, RELAYED)  # the paths that carry the programs' bytes
FINGERPRINT = 16  # bytes of a payload's tail that identify it when a WAN program forwards it


@dataclass
class Arrivals:
    """What reached one peer, by path."""

    label: str
    packets: Counter = field(default_factory=Counter)
    bytes: Counter = field(default_factory=Counter)
    first: dict[str, float] = field(default_factory=dict)  # path -> time of its first datagram
    timeline: list[tuple[float, str, int]] = field(default_factory=list)  # (time, path, bytes)
    relayed_by: Counter = field(default_factory=Counter)  # relaying node -> bytes


@dataclass(frozen=True)
class ProgramPath:
    number: int
    path: str  # direct, relayed or none
    arrivals: tuple[Arrivals, Arrivals]
    first_direct: dict[str, float | None]  # label -> seconds since the run's start of its first peer-to-peer datagram
    after_direct: dict[str, int]  # path -> bytes delivered from the later first peer-to-peer datagram on
    per_second: dict[str, list[int]]  # path -> bytes delivered in each second of the run
    packets_per_second: dict[str, list[int]]  # path -> packets delivered in each second of the run
    upgraded_at: float | None = None  # a relayed session that went direct: when (the later first direct datagram)

    def opened(self, path: str) -> float | None:
        """When `path` had carried something to both peers (epoch seconds, at their LANs), or None."""
        firsts = [w.first.get(path) for w in self.arrivals]
        return None if None in firsts else max(firsts)  # type: ignore[type-var]

    def timeline(self) -> dict[str, dict[str, list[int]]]:
        """Bytes and packets per path per second, as verdict.json keeps them."""
        return {p: {"bytes": self.per_second[p], "packets": self.packets_per_second[p]} for p in self.per_second}

    @property
    def reason(self) -> str:
        a, b = self.arrivals
        def path(x: Arrivals, p: str) -> str:
            by = f" by {', '.join(sorted(x.relayed_by))}" if p == RELAYED else ""
            return f"{p}{by} {x.packets[p]} packets/{x.bytes[p]} B"

        return "; ".join(f"to {x.label}: " + (", ".join(path(x, p) for p in DELIVERING if x.packets[p])
                                              or "nothing") for x in (a, b))


def _relay_data(payload: bytes) -> bool:
    """TURN that carries a peer's bytes (ChannelData, Send/Data indication), not TURN's own control."""
    from wire.stun import relayed_payload

    return relayed_payload(payload) is not None


def _fingerprint(payload: bytes) -> bytes:
    return payload[-FINGERPRINT:]


def sent_to(view: RunView, sender: Pair, node: Node | None) -> set[bytes]:
    """The fingerprints of what `sender` sent to `node`, as it left its router's WAN."""
    if node is None:
        return set()
    ips, public = {str(a) for a in node.addresses}, str(sender.public_ip)
    return {_fingerprint(p.payload) for p in view.wan(sender) if p.src == public and p.dst in ips and p.payload}


def arrivals(view: RunView, receiver: Pair, sender: Pair) -> Arrivals:
    topo = view.topology
    relays = {str(a): n for n in (topo.relay, topo.wan_host) if n for a in n.addresses}
    broker_ips = {str(a) for a in topo.broker.addresses}
    forwarded = sent_to(view, sender, topo.wan_host)
    private, partner, partner_private = str(receiver.private_ip), str(sender.public_ip), str(sender.private_ip)
    out = Arrivals(receiver.label)
    for p in view.at_peer(receiver):
        if p.dst != private:
            continue
        path = LOCAL if p.src == partner_private else _path_of(p, partner, relays, broker_ips, forwarded)
        size = len(p.payload) if p.payload else p.length
        out.packets[path] += 1
        out.bytes[path] += size
        out.first.setdefault(path, p.time)
        out.timeline.append((p.time, path, size))
        if path == RELAYED:
            out.relayed_by[relays[p.src].name] += size
    return out


def _path_of(p: Packet, partner: str, relays: dict[str, Node], broker_ips: set[str], forwarded: set[bytes]) -> str:
    if p.src == partner:
        return DIRECT
    relay = relays.get(p.src)
    if relay is not None and relay.role is NodeRole.RELAY:
        if p.sport != TURN_PORT:
            return RELAYED
        return RELAYED if p.payload and _relay_data(p.payload) else SIGNALLING
    if relay is not None:  # the WAN host: relayed when it forwards the partner's bytes
        return RELAYED if p.payload and _fingerprint(p.payload) in forwarded else SIGNALLING
    if p.src in broker_ips:
        return SIGNALLING
    return OTHER


def _first_peer_to_peer(w: Arrivals) -> float | None:
    return min((w.first[p] for p in PEER_TO_PEER if p in w.first), default=None)


def program_path(view: RunView, pp: PunchPair) -> ProgramPath:
    ways = (arrivals(view, pp.a, pp.b), arrivals(view, pp.b, pp.a))
    firsts = [_first_peer_to_peer(w) for w in ways]
    both_direct = all(t is not None for t in firsts)
    since = max(firsts) if both_direct else None  # type: ignore[type-var]
    after: Counter = Counter()
    for w in ways:
        for t, path, size in w.timeline:
            if since is not None and t >= since:
                after[path] += size
    if both_direct and after[DIRECT] + after[LOCAL] >= after[RELAYED]:
        path = LOCAL if after[LOCAL] > after[DIRECT] else DIRECT
    elif all(w.packets[RELAYED] for w in ways):
        path = RELAYED
    else:
        path = NONE
    seconds = int(max((t for w in ways for t, _, _ in w.timeline), default=view.t0) - view.t0) + 1
    per_second = {p: [0] * seconds for p in DELIVERING}
    packets = {p: [0] * seconds for p in DELIVERING}
    for w in ways:
        for t, p, size in w.timeline:
            if p in per_second:
                per_second[p][int(t - view.t0)] += size
                packets[p][int(t - view.t0)] += 1
    first_relayed = min((w.first[RELAYED] for w in ways if RELAYED in w.first), default=None)
    upgraded = path in PEER_TO_PEER and first_relayed is not None and first_relayed < since  # type: ignore[operator]
    return ProgramPath(pp.number, path, ways,
                       {w.label: None if t is None else round(t - view.t0, 6) for w, t in zip(ways, firsts)},
                       {p: after[p] for p in DELIVERING}, per_second, packets,
                       round(since - view.t0, 6) if upgraded else None)


def program_paths(view: RunView) -> list[ProgramPath]:
    """Every pair's path, each read from its own view of the run."""
    return [program_path(pair_view, pp) for pp, pair_view in view.per_pair()]
