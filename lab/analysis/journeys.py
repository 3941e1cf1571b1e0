"""One datagram's journey across the capture points: the sightings of the same packet, joined.

A datagram that crosses a router is captured up to four times (sender's LAN, sender's WAN,
receiver's WAN, receiver's LAN), with different addresses each time because NAT rewrites them.
What stays the same is the UDP payload, so sightings are joined by payload: a sighting joins the
latest journey with the same payload that has not been seen at that vantage point yet and started
less than WINDOW_S ago (a retransmission with an identical payload, such as a repeated register,
starts a journey of its own). Of a program that floods one payload, only the latest
SAME_PAYLOAD_IN_FLIGHT journeys are candidates: more in flight at once cannot be told apart
anyway, and the join stays linear in the sightings. The NAT table and the ladder are both read
off these journeys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.analysis.packet_roles import PacketRole, role_of
from lab.analysis.packets import UDP, Packet

WINDOW_S = 0.25  # far longer than a datagram takes through the lab, shorter than any resend interval
SAME_PAYLOAD_IN_FLIGHT = 64


@dataclass
class Journey:
    sightings: list[Packet] = field(default_factory=list)  # in time order, one per vantage point
    _at: dict[str, Packet] = field(init=False, repr=False, compare=False)  # the same, by vantage point

    def __post_init__(self) -> None:
        self._at = {p.vantage: p for p in self.sightings}

    @property
    def first(self) -> Packet:
        return self.sightings[0]

    @property
    def last(self) -> Packet:
        return self.sightings[-1]

    @property
    def role(self) -> PacketRole:
        return role_of(self.first)

    def at(self, vantage: str) -> Packet | None:
        return self._at.get(vantage)

    def add(self, p: Packet) -> None:
        """One more sighting, later than the others and at a vantage point the journey has not reached."""
        self.sightings.append(p)
        self._at[p.vantage] = p


def journeys(caps: dict[str, list[Packet]], protocols: tuple[int, ...] = (UDP,)) -> list[Journey]:
    """Every UDP datagram of a run (and TCP segment, if asked: a user's program may speak TCP), as the
    journeys of its sightings, in the order they started. A TCP segment is joined by its payload and
    sequence number, which NAT leaves alone: a bare ACK has no payload."""
    sightings = sorted((p for packets in caps.values() for p in packets if p.proto in protocols),
                       key=lambda p: p.time)
    started: list[Journey] = []
    by_payload: dict[tuple[bytes, int | None], list[Journey]] = {}
    for p in sightings:
        candidates = by_payload.setdefault((p.payload, p.seq), [])
        joined = None
        for j in reversed(candidates[-SAME_PAYLOAD_IN_FLIGHT:]):  # newest first: older ones are older still
            if p.time - j.first.time > WINDOW_S:
                break
            if j.at(p.vantage) is None:
                joined = j
                break
        if joined is None:
            joined = Journey()
            candidates.append(joined)
            started.append(joined)
        joined.add(p)
    return started


def by_vantage(trips: list[Journey]) -> dict[str, list[Journey]]:
    """The journeys that reached each vantage point, in the order they started: what a router's
    tables need without walking every journey of the run for each router."""
    out: dict[str, list[Journey]] = {}
    for trip in trips:
        for p in trip.sightings:
            out.setdefault(p.vantage, []).append(trip)
    return out
