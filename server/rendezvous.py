"""The broker's rendezvous logic, free of sockets so that it can be tested exhaustively.

A room holds up to two members. Each register is answered from the room's state alone, so a
retransmitted register gets the same answer. When the second member arrives, both are told the
other's public endpoint as observed here (the NAT's address and port). Members not heard from
for `ttl` seconds are forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.proto import (
    Data,
    Endpoint,
    Error,
    Intro,
    Ping,
    Pong,
    Probe,
    ProtocolError,
    Register,
    Waiting,
    decode,
    encode,
)

log = logging.getLogger("broker")

ROOM_SIZE = 2
Reply = tuple[bytes, Endpoint]


@dataclass
class Member:
    peer: str
    endpoint: Endpoint
    txn: str
    last_seen: float


@dataclass
class Room:
    name: str
    members: dict[str, Member] = field(default_factory=dict)


@dataclass
class Stats:
    received: int = 0
    malformed: int = 0
    registrations: int = 0
    introductions: int = 0
    expired: int = 0


class Rendezvous:
    def __init__(self, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.rooms: dict[str, Room] = {}
        self.stats = Stats()

    def handle(self, data: bytes, source: Endpoint) -> list[Reply]:
        """Answer one datagram from `source`; returns the datagrams to send."""
        self.stats.received += 1
        try:
            msg = decode(data)
        except ProtocolError as exc:
            self.stats.malformed += 1
            log.info("malformed datagram from %s (%d bytes): %s", source, len(data), exc)
            return [(encode(Error("bad-request", str(exc)[:120])), source)]
        if isinstance(msg, Register):
            return self._register(msg, source)
        if isinstance(msg, Ping):
            return [(encode(Pong(msg.tag, msg.seq)), source)]
        if isinstance(msg, (Probe, Data)):
            # A peer's session traffic must never reach the broker; say so in the log, don't answer.
            log.warning("peer traffic (%s) from %s reached the broker", msg.TYPE, source)
            return []
        if isinstance(msg, Error):
            return []  # never answer an error: two confused parties must not loop
        self.stats.malformed += 1
        log.info("unexpected %s from %s", msg.TYPE, source)
        return [(encode(Error("unexpected", f"a broker does not accept {msg.TYPE}")), source)]

    def _register(self, msg: Register, source: Endpoint) -> list[Reply]:
        now = self.clock()
        self.expire(now)
        self.stats.registrations += 1
        room = self.rooms.setdefault(msg.room, Room(msg.room))
        member = room.members.get(msg.peer)
        if member is None and len(room.members) >= ROOM_SIZE:
            log.info("register room=%s peer=%s from %s refused: room full", msg.room, msg.peer, source)
            return [(encode(Error("room-full", f"room {msg.room} already has {ROOM_SIZE} members")), source)]
        moved = member is not None and member.endpoint != source
        if member is None or moved:
            log.info(
                "register room=%s peer=%s from %s%s", msg.room, msg.peer, source, " (endpoint changed)" if moved else ""
            )
        room.members[msg.peer] = Member(msg.peer, source, msg.txn, now)
        partner = next((m for m in room.members.values() if m.peer != msg.peer), None)
        if partner is None:
            return [(encode(Waiting(msg.room, msg.txn, source)), source)]
        replies = [(encode(Intro(msg.room, msg.txn, source, partner.peer, partner.endpoint)), source)]
        if member is None or moved:
            # The room just became complete (or changed): tell the member who was waiting.
            self.stats.introductions += 1
            log.info("intro room=%s %s@%s <-> %s@%s", msg.room, msg.peer, source, partner.peer, partner.endpoint)
            replies.append((encode(Intro(msg.room, partner.txn, partner.endpoint, msg.peer, source)), partner.endpoint))
        return replies

    def expire(self, now: float | None = None) -> None:
        """Forget members not heard from for ttl seconds, and rooms left empty."""
        now = self.clock() if now is None else now
        for name in list(self.rooms):
            room = self.rooms[name]
            for peer, member in list(room.members.items()):
                if now - member.last_seen > self.ttl:
                    del room.members[peer]
                    self.stats.expired += 1
                    log.info("expired room=%s peer=%s (silent for %.0fs)", name, peer, now - member.last_seen)
            if not room.members:
                del self.rooms[name]

