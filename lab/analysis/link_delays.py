"""How long datagrams took across a router's access link, read from its LAN and WAN captures.

A router's link conditions each direction on its way in (node/link_rules.py), so its LAN capture
sees what the peer sends before the link and its WAN capture after it, and the other way round for
what comes to the peer. The same datagram keeps its payload through the NAT: matched by payload,
the two sightings give the time it spent on the link.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass

from lab.analysis.packets import Packet
from lab.analysis.run import RunView
from lab.topology import Pair
from wire.protocol import Ack, Data, Intro, Probe


@dataclass(frozen=True)
class Crossings:
    """A router's link as its captures saw it: per direction, each datagram's time on it (ms), and
    how many datagrams went in and never came out."""

    router: str
    up_ms: list[float]  # LAN -> WAN: what the peer sent
    down_ms: list[float]  # WAN -> LAN: what came to the peer
    up_lost: int
    down_lost: int

    @staticmethod
    def median(times: list[float]) -> float | None:
        return statistics.median(times) if times else None


def _times(packets: list[Packet], keep) -> dict[bytes, list[float]]:
    out: dict[bytes, list[float]] = {}
    for p in packets:
        if p.sport is not None and p.payload and keep(p):
            out.setdefault(p.payload, []).append(p.time)
    return out


def _across(before: dict[bytes, list[float]], after: dict[bytes, list[float]]) -> tuple[list[float], int]:
    """Each sighting on the far side, timed from the latest sighting of the same payload on the near
    side before it (a datagram sent again has the same payload: the copy that made it is the last one
    sent before it came out); and how many near-side sightings never came out."""
    times, lost = [], 0
    for payload, near in before.items():
        far = after.get(payload, [])
        for t in far:
            i = bisect.bisect_right(near, t)
            if i:
                times.append((t - near[i - 1]) * 1000)
        lost += max(0, len(near) - len(far))
    return times, lost


def crossings(view: RunView, pair: Pair) -> Crossings:
    """The time each UDP datagram of the pair's peer spent crossing its own router (whose link it is), both ways."""
    private, public = str(pair.private_ip), str(pair.router.interface("wan").address)
    lan, wan = view.lan(pair), view.home_wan(pair)
    up, up_lost = _across(_times(lan, lambda p: p.src == private), _times(wan, lambda p: p.src == public))
    down, down_lost = _across(_times(wan, lambda p: p.dst == public), _times(lan, lambda p: p.dst == private))
    return Crossings(pair.router.name, up, down, up_lost, down_lost)


@dataclass(frozen=True)
class PeerTimes:
    """What a peer reports of its punched path, as its router's LAN capture saw it happen."""

    label: str
    rtt_ms: float | None  # median: a data message sent once, to the partner's ack of it
    first_heard_ms: float | None  # the broker's introduction reaching the peer, to the partner's first datagram


def peer_times(view: RunView, pair: Pair) -> PeerTimes:
    """From the pair's router LAN capture: the peer's round trips and its wait from introduction to partner."""
    private, partner = str(pair.private_ip), view.partner(pair)
    lan = view.lan(pair)
    sent: dict[int, list[float]] = {}
    acked: dict[int, float] = {}
    intro_at = heard_at = None
    for p in lan:
        m = p.msg
        if p.src == private and isinstance(m, Data) and m.sender == pair.label:
            sent.setdefault(m.seq, []).append(p.time)
        elif p.dst == private and isinstance(m, Ack) and m.sender == partner.label:
            acked.setdefault(m.seq, p.time)
        elif p.dst == private and isinstance(m, Intro) and m.partner == partner.label and intro_at is None:
            intro_at = p.time
        elif (p.dst == private and isinstance(m, (Probe, Data)) and m.sender == partner.label and heard_at is None
              and intro_at is not None):
            heard_at = p.time
    rtts = [(acked[seq] - times[0]) * 1000 for seq, times in sent.items() if len(times) == 1 and seq in acked]
    first = None if intro_at is None or heard_at is None else (heard_at - intro_at) * 1000
    return PeerTimes(pair.label, statistics.median(rtts) if rtts else None, first)
