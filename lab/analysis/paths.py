"""The path each punch pair's messages took, read from the pcaps alone: direct, local, relayed or failed.

What reached each peer is read at the last capture before it (RunView.at_peer: its router's LAN,
or its own where it has one, as a same-lan peer): a data message arrived directly when it came
from the partner's public address outside TURN framing, locally when it came from the partner's
private address (the two on one LAN, nothing between), and relayed when it came from the relay
inside it. The relay's own capture says what it carried. A pair's path is
- `failed` when some message, either way, reached its peer by no path;
- `relayed` when the relay carried any of the pair's session datagrams of data (data, acks, byes);
- `local` when every message arrived locally;
- `direct` otherwise (for peers behind one public address, same-lan's or cgnat's: through that router's
  hairpin, from its public address).
Beside it, the path the lab expects: from the NAT settings (nat.traversal plays the peer's
strategy against both NATs) and the relay mode of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from lab.analysis.packets import Packet
from lab.analysis.run import RunView
from lab.topology import Pair, PunchPair
from nat.behaviour import DEFAULT_PRESET, PRESETS, NatBehaviour, parse_nat
from nat.traversal import direct_possible
from wire.protocol import Ack, Bye, Data, Probe

SESSION_DATA = (Data, Ack, Bye)
DIRECT, LOCAL, RELAYED, FAILED = "direct", "local", "relayed", "failed"


@dataclass(frozen=True)
class Expected:
    path: str
    reason: str


@dataclass(frozen=True)
class Direction:
    """One way of a pair's exchange, as the last capture before its receiver saw it."""

    sender: str
    receiver: str
    direct: frozenset[int]  # data seqs that arrived directly, from the sender's public address
    relayed: frozenset[int]  # through the relay
    local: frozenset[int] = frozenset()  # from the sender's private address, on their one LAN

    def complete(self, messages: int) -> bool:
        return set(range(1, messages + 1)) <= self.direct | self.relayed | self.local


@dataclass(frozen=True)
class PairPath:
    number: int
    path: str
    ways: tuple[Direction, Direction]
    at_relay: int  # the pair's data, acks and byes the relay's capture saw
    punched: bool  # each side's direct probes or data reached the other's LAN
    expected: Expected


MAPPING_ORDER, FILTERING_ORDER = ("eim", "adm", "apdm"), ("eif", "adf", "apdf")


def side_behaviour(side: Pair, with_carrier: bool = True) -> NatBehaviour:
    """The NAT a side's peer sees between it and the internet, for the theory: its router's; a public peer's
    none, which keeps its port for every remote and takes what reaches it (a full cone); behind a carrier of
    its own, the two in series: the more dependent mapping of the two (with its port allocation) and the
    stricter filtering."""
    if side.router is None:
        return PRESETS["full-cone"]
    home = parse_nat(side.router.nat or DEFAULT_PRESET)
    if side.carrier is None or not with_carrier:
        return home
    carrier = parse_nat(side.carrier.nat or DEFAULT_PRESET)
    ports = max(home, carrier, key=lambda b: MAPPING_ORDER.index(b.mapping))
    if home.mapping == carrier.mapping:
        ports = carrier if carrier.allocation != "preserve" else home
    return replace(home, mapping=ports.mapping, allocation=ports.allocation,
                   filtering=max(home.filtering, carrier.filtering, key=FILTERING_ORDER.index))


def expected_path(pp: PunchPair, relay_mode: str, late_peer: str = "b", candidates: str = "all") -> Expected:
    """What the lab should see for the pair: with `force` the relay; otherwise direct where the NATs allow
    it, else the relay (with `auto`) or nothing (with `off`). Peers on one LAN meet locally when they try
    private endpoints (`candidates` all), else directly only through their NAT's hairpinning."""
    if relay_mode == "force":
        return Expected(RELAYED, "relay forced")
    if pp.same_lan:
        if candidates == "all":
            return Expected(LOCAL, "both peers on one LAN: the partner's private endpoint answers, no NAT between")
        router = pp.a.router
        if parse_nat(router.nat or DEFAULT_PRESET).hairpinning:
            return Expected(DIRECT, f"both peers on one LAN, trying public endpoints only: {router.name} hairpins")
        return Expected(RELAYED if relay_mode == "auto" else FAILED,
                        f"both peers on one LAN, trying public endpoints only: {router.name} does not hairpin")
    shared = pp.shares_edge  # behind one carrier, its hairpin stands in for it (below)
    a, b = (side_behaviour(side, with_carrier=not shared) for side in pp.sides)
    theory = direct_possible(a, b, late_peer)
    reason = theory.reason
    public = [side.label for side in pp.sides if side.router is None]
    if public:
        reason = f"{' and '.join(public)} has no NAT (a full cone to the theory); {reason}"
    behind = [f"{side.label}'s {side.router.name} behind {side.carrier.name}" for side in pp.sides
              if side.carrier and not shared]
    if behind:
        reason = f"{', '.join(behind)} (the two NATs in series to the theory); {reason}"
    if shared:  # two home routers behind one carrier: they meet only through its hairpin
        carrier = pp.a.edge
        if not parse_nat(carrier.nat or DEFAULT_PRESET).hairpinning:
            return Expected(RELAYED if relay_mode == "auto" else FAILED,
                            f"both peers behind {carrier.name}, which does not hairpin")
        # Its hairpin keeps each sender's public endpoint (nat/rules.py) and filters nothing: the home NATs decide.
        reason = f"{carrier.name} hairpins; {reason}"
    if theory.direct:
        return Expected(DIRECT, reason)
    return Expected(RELAYED if relay_mode == "auto" else FAILED, reason)


def message_arrivals(view: RunView, sender: Pair, receiver: Pair,
                     kinds: tuple[type, ...]) -> Iterator[tuple[Packet, str]]:
    """The `kinds` of lab messages from `sender` that reached `receiver`'s peer (RunView.at_peer), each
    with how: DIRECT (from the sender's public address, outside TURN framing), LOCAL (from its private
    address: the two share a LAN) or RELAYED (from the relay, inside TURN framing). Nothing else
    counts as having arrived."""
    private, public, relay_ips = str(receiver.private_ip), str(sender.public_ip), view.relay_ips
    sender_private = str(sender.private_ip)
    for p in view.at_peer(receiver):
        m = p.msg
        if not isinstance(m, kinds) or m.sender != sender.label or p.dst != private:
            continue
        if p.relayed and p.src in relay_ips:
            yield p, RELAYED
        elif not p.relayed and p.src == public:
            yield p, DIRECT
        elif not p.relayed and p.src == sender_private:
            yield p, LOCAL


def _direction(view: RunView, sender: Pair, receiver: Pair) -> Direction:
    seqs: dict[str, set[int]] = {DIRECT: set(), RELAYED: set(), LOCAL: set()}
    for p, way in message_arrivals(view, sender, receiver, (Data,)):
        seqs[way].add(p.msg.seq)
    return Direction(sender.label, receiver.label, frozenset(seqs[DIRECT]), frozenset(seqs[RELAYED]),
                     frozenset(seqs[LOCAL]))


def _reached_directly(view: RunView, sender: Pair, receiver: Pair) -> bool:
    """Whether the sender's probes or data reached the receiver without the relay (public or local)."""
    return any(way != RELAYED for _, way in message_arrivals(view, sender, receiver, (Probe, Data)))


def relayed_session(packets: list[Packet], labels: set[str]) -> list[Packet]:
    """The datagrams of data (data, acks, byes) of the peers `labels` inside TURN framing."""
    return [p for p in packets if p.relayed and isinstance(p.msg, SESSION_DATA) and p.msg.sender in labels]


def pair_path(view: RunView, pp: PunchPair, messages: int, relay_mode: str, late_peer: str = "b",
              candidates: str = "all") -> PairPath:
    ways = (_direction(view, pp.a, pp.b), _direction(view, pp.b, pp.a))
    at_relay = len(relayed_session(view.relay, {pp.a.label, pp.b.label}))
    punched = _reached_directly(view, pp.a, pp.b) and _reached_directly(view, pp.b, pp.a)
    if not all(w.complete(messages) for w in ways):
        path = FAILED
    elif at_relay or any(w.relayed for w in ways):
        path = RELAYED
    elif all(w.local and not w.direct for w in ways):
        path = LOCAL
    else:
        path = DIRECT
    return PairPath(pp.number, path, ways, at_relay, punched, expected_path(pp, relay_mode, late_peer, candidates))


@dataclass(frozen=True)
class Allocations:
    """A peer's TURN allocations as the relay's capture saw them."""

    requests: int = 0
    authenticated: int = 0  # requests that carried credentials (the first of each is refused: it has none)
    granted: int = 0
    refused: int = 0  # 401 to a request with credentials: wrong or expired
    challenged: int = 0  # 401 to a request without credentials: how every allocation starts

    def explain(self, label: str) -> str | None:
        """Why the peer had no relayed candidate, if the capture shows it."""
        if self.refused and not self.granted:
            return f"the relay refused peer {label}'s credentials (401 to {self.refused} authenticated Allocate)"
        if self.requests and not self.granted and not self.authenticated:
            return f"the relay never answered peer {label}'s Allocate ({self.requests} requests)"
        return None


def allocations(view: RunView, pair: Pair) -> Allocations:
    from wire import stun  # aioice's codec: only for runs with a relay

    public = str(pair.public_ip)
    asked: dict[bytes, bool] = {}  # transaction -> with credentials
    answers: list[tuple[bytes, int, int | None]] = []
    for p in view.relay:
        if p.msg is not None or public not in (p.src, p.dst) or not stun.is_stun(p.payload):
            continue
        try:
            message = stun.decode(p.payload)
        except stun.StunError:
            continue
        method, kind = stun.method_and_class(p.payload)
        if method != stun.ALLOCATE:
            continue
        if kind == stun.REQUEST and p.src == public:
            asked[message.transaction_id] = "USERNAME" in message.attributes
        elif kind in (stun.SUCCESS, stun.ERROR) and p.dst == public:
            code = message.attributes.get("ERROR-CODE", (None,))[0] if kind == stun.ERROR else None
            answers.append((message.transaction_id, kind, code))
    unauthorized = [txn for txn, kind, code in answers if kind == stun.ERROR and code == 401 and txn in asked]
    refused = sum(1 for txn in unauthorized if asked[txn])
    return Allocations(len(asked), sum(asked.values()), sum(1 for _, kind, _ in answers if kind == stun.SUCCESS), refused,
                       len(unauthorized) - refused)
