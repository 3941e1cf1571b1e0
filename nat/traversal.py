"""What RFC 4787 behaviours allow the lab's peer: whether a direct path opens between two NATs.

The answer comes from playing the peer's strategy (peers/peer.py) against a model of the two
NATs, not from a table: each peer reads two mappings of its NAT (to the broker, then to the
broker's other address) and predicts the ports of its next flows from them (wire/port_prediction.py),
registers with the broker (which learns the mapping its NAT made for the broker), then probes the
partner's predicted ports and its broker-seen endpoint every round, the late side starting a round later; the first probe heard moves its target to where it came from, and is
answered there. A NAT maps per its mapping behaviour (one public port for all, per remote
address, per remote address and port) and lets an inbound datagram through its mapping per its
filtering behaviour (anyone; a remote address it sent to; the remote endpoint it sent to).
A direct path is possible when both peers end up hearing each other.

The lab's verdict compares what the captures show with this; the traversal matrix prints it as
the expected path of each cell, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nat.behaviour import FILTERINGS, NatBehaviour
from wire.port_prediction import predict

BROKER = ("broker", 3478)
BROKER_OTHER = ("broker-other", 3479)  # the broker's other address (RFC 5780 OTHER-ADDRESS)
PRIVATE_PORT = 40000
ROUNDS = 6  # probing rounds played: the strategy settles in three


@dataclass
class _Nat:
    side: str
    behaviour: NatBehaviour
    mappings: dict[object, int] = field(default_factory=dict)  # mapping key -> public port
    sent: dict[int, set[tuple[str, int]]] = field(default_factory=dict)  # public port -> remotes sent to
    next_port: int = 50000
    drawn: int = 0  # ports drawn so far: a random allocation's next one is a scramble of this count

    def key(self, remote: tuple[str, int]) -> object:
        return {"eim": None, "adm": remote[0], "apdm": remote}[self.behaviour.mapping]

    def send(self, remote: tuple[str, int]) -> tuple[str, int]:
        """The datagram's public source endpoint, mapping made (and remembered) as needed."""
        key = self.key(remote)
        if key not in self.mappings:
            preserve = self.behaviour.allocation == "preserve" and PRIVATE_PORT not in self.mappings.values()
            self.mappings[key] = PRIVATE_PORT if preserve else self._fresh()
        port = self.mappings[key]
        self.sent.setdefault(port, set()).add(remote)
        return (self.side, port)

    def _fresh(self) -> int:
        """The next port up (in order), or one far from the last (random: as the kernel draws it)."""
        self.drawn += 1
        if self.behaviour.allocation == "random":
            return 1024 + (self.drawn * 40503) % 64000
        self.next_port += 1
        return self.next_port

    def admits(self, port: int, source: tuple[str, int]) -> str | None:
        """None if a datagram from `source` to public `port` gets in, else why not."""
        if port not in self.mappings.values():
            return "no mapping at that port"
        sent = self.sent.get(port, set())
        if self.behaviour.filtering == "eif":
            return None
        if self.behaviour.filtering == "adf":
            return None if any(ip == source[0] for ip, _ in sent) else "filtered: never sent to that address"
        return None if source in sent else "filtered: never sent to that address and port"


@dataclass
class _Peer:
    nat: _Nat
    target: tuple[str, int]
    starts: int  # the round it starts probing in
    predicted: list[tuple[str, int]] = field(default_factory=list)  # the partner's predicted endpoints
    heard: bool = False

    def aims(self) -> list[tuple[str, int]]:
        """This round's destinations: the predicted ports first, until the partner is heard (as the peer)."""
        return [self.target] if self.heard else [*self.predicted, self.target]


@dataclass(frozen=True)
class Traversal:
    direct: bool
    reason: str  # one line, for people


def direct_possible(a: NatBehaviour, b: NatBehaviour, late: str = "b", predicting: bool = True) -> Traversal:
    """Whether the lab's peer opens a direct path between a peer behind `a` and one behind `b` (`predicting`:
    with port prediction, as the peer does by default)."""
    nats = {"a": _Nat("a", a), "b": _Nat("b", b)}
    seen = {side: nats[side].send(BROKER) for side in "ab"}  # registration: the endpoints the broker saw
    guesses = {side: predict(seen[side][1], nats[side].send(BROKER_OTHER)[1]) for side in "ab"}
    predicted = {side: [(side, port) for port in range(g.first, g.first + g.count) if port != seen[side][1]]
                 if predicting else [] for side, g in guesses.items()}
    peers = {side: _Peer(nats[side], seen[_other(side)], 1 if side == late else 0, predicted[_other(side)])
             for side in "ab"}
    drops: dict[str, str] = {}
    for round_ in range(ROUNDS):
        flying = []
        for side, peer in peers.items():
            if round_ >= peer.starts:
                flying += [(side, peer.nat.send(dest), dest) for dest in peer.aims()]
        for side, source, dest in flying:
            other = "b" if side == "a" else "a"
            refused = nats[other].admits(dest[1], source)
            if refused is not None:
                drops.setdefault(side, refused)
                continue
            receiver = peers[other]
            if not receiver.heard:
                receiver.target = source
            receiver.heard = True
    if all(p.heard for p in peers.values()):
        how = " by port prediction" if predicting and not direct_possible(a, b, late, False).direct else ""
        return Traversal(True, f"a direct path opens{how} (a's NAT {a.mapping}/{a.filtering}, "
                               f"b's {b.mapping}/{b.filtering})")
    behaviours = {"a": a, "b": b}
    blocked = [_why_blocked(side, "b" if side == "a" else "a", behaviours, why)
               for side, why in sorted(drops.items()) if not peers["b" if side == "a" else "a"].heard]
    return Traversal(False, "no direct path: " + "; ".join(blocked))


def _other(side: str) -> str:
    return "b" if side == "a" else "a"


def _why_blocked(sender: str, receiver: str, behaviours: dict[str, NatBehaviour], refused: str) -> str:
    """Why the sender's probes never reached the receiver, in the NATs' terms."""
    s, r = behaviours[sender], behaviours[receiver]
    filters = FILTERINGS[r.filtering].removesuffix("-dependent")
    if s.mapping != "eim":
        return f"{sender}'s NAT maps per destination ({s.mapping}) and {receiver}'s filters by {filters}"
    if r.mapping != "eim":
        return f"{sender} aims at the port {receiver}'s NAT mapped for the broker ({r.mapping}), filtered by {filters}"
    return f"{sender}'s probes stop at {receiver}'s NAT ({refused})"
