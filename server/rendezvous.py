"""The broker's rendezvous logic (protocol v2), free of sockets so that it can be tested exhaustively.

A room holds up to two members. A register is accepted only with a MAC under the room's key
(derived from the broker key, wire.auth), a timestamp within the clock-skew window and a
MAC never seen before (replay). A member's registers are checked against the member (its
RegisterWindow): never older than its latest, never a MAC already seen at that second; a forgotten
member's window is kept while its registers could be fresh. Only the registers that join (a new
member, or one that started again) enter the broker-wide replay cache, so members waiting for
their partners, re-sending every 0.5 s, cannot fill it: the cache bounds the joins per minute,
not the registers. Each accepted register is answered from the room's state alone, so a
retransmission gets the same answer. When the second member arrives, both are introduced:
each learns the other's public endpoint as observed here (the NAT's address and port), the
private endpoint the other declared, and a fresh session nonce. Members not heard from for
`member_ttl_s` are forgotten, rooms after `room_lifetime_s` whatever happens in them.

Amplification: an answer to anything unauthenticated (junk, a register whose MAC fails, a ping)
is never larger than what it answers; an error that would not fit is shortened, or not sent.
Replays and peer traffic get no answer at all. Every datagram that is not served is counted by
reason in `stats.dropped`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from server.limits import Limits
from wire.auth import SESSION_HEX, RoomKeys, fresh, new_nonce, room_secret, sign, verify
from wire.protocol import (
    MAX_DATAGRAM,
    Ack,
    Bye,
    Data,
    Endpoint,
    Error,
    Intro,
    Message,
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

Reply = tuple[bytes, Endpoint]
MAX_REASON = 120  # characters of an error's reason


@dataclass
class RegisterWindow:
    """A member's replay state: registers are signed with a fresh timestamp (whole seconds) each, so
    a genuine one is never older than the newest accepted, nor one already seen in that second."""

    last_ts: int = 0
    macs_at_last_ts: set[str] = field(default_factory=set)

    def replayed(self, msg: Register) -> bool:
        return msg.ts < self.last_ts or (msg.ts == self.last_ts and msg.mac in self.macs_at_last_ts)

    def accepted(self, msg: Register) -> None:
        if msg.ts > self.last_ts:
            self.last_ts, self.macs_at_last_ts = msg.ts, set()
        self.macs_at_last_ts.add(msg.mac)


@dataclass
class Member:
    peer: str
    endpoint: Endpoint  # as observed: the NAT's public side
    private: Endpoint  # as declared in the register
    txn: str
    last_seen: float
    relay: Endpoint | None = None  # its relayed candidate (a TURN allocation), passed on to the partner
    predicted: tuple[int, int] = (0, 0)  # its predicted public ports (first, count), passed on to the partner
    window: RegisterWindow = field(default_factory=RegisterWindow)  # kept across its txns


@dataclass
class Room:
    name: str
    keys: RoomKeys
    created: float
    members: dict[str, Member] = field(default_factory=dict)
    session: str | None = None  # set when the room becomes complete, cleared when its membership changes


@dataclass
class Stats:
    received: int = 0
    registrations: int = 0  # accepted registers
    introductions: int = 0
    expired_members: int = 0
    expired_rooms: int = 0
    errors_sent: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> datagrams not served

    def snapshot(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def bounded_error(code: str, reason: str, limit: int) -> bytes | None:
    """An Error of at most `limit` bytes, its reason shortened to fit; None if even no reason fits."""
    reason = reason[:MAX_REASON]
    data = encode(Error(code, reason))
    if len(data) <= limit:
        return data
    bare = len(encode(Error(code, "")))
    if bare > limit:
        return None
    reason = reason[: limit - bare]
    while len(data := encode(Error(code, reason))) > limit:  # escapes make some characters longer
        reason = reason[:-1]
    return data


class Rendezvous:
    def __init__(
        self,
        broker_key: bytes,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        new_session: Callable[[], str] = lambda: new_nonce(SESSION_HEX),
    ) -> None:
        self.broker_key = broker_key
        self.limits = limits
        self.clock, self.wall, self.new_session = clock, wall, new_session
        self.rooms: dict[str, Room] = {}
        self.replays: OrderedDict[str, float] = OrderedDict()  # register MAC -> when it may be forgotten
        # (room, peer) of a forgotten member -> (when it may be forgotten, its register window): none of
        # its registers, cached or not, may bring it back while one could still be fresh.
        self.floors: OrderedDict[tuple[str, str], tuple[float, RegisterWindow]] = OrderedDict()
        self.stats = Stats()

    # -- entry point ---------------------------------------------------------------------------
    def handle(self, data: bytes, source: Endpoint) -> list[Reply]:
        """Answer one datagram from `source`; returns the datagrams to send."""
        self.stats.received += 1
        if len(data) > MAX_DATAGRAM:
            return self._drop("oversize", source)
        try:
            msg = decode(data)
        except ProtocolError as exc:
            return self._refuse("malformed", "bad-request", str(exc), data, source)
        if isinstance(msg, Register):
            return self._register(msg, data, source)
        if isinstance(msg, Ping):
            pong = encode(Pong(msg.tag, msg.seq))  # the same fields: never longer than the ping
            return [(pong, source)] if len(pong) <= len(data) else self._drop("reply-too-large", source)
        if isinstance(msg, (Probe, Data, Ack, Bye)):
            # A peer's session traffic must never reach the broker; say so in the log, don't answer.
            log.warning("peer traffic (%s) from %s reached the broker", msg.TYPE, source)
            return self._drop("peer-traffic", source)
        if isinstance(msg, Error):
            return self._drop("error-message", source)  # never answer an error: no loops
        return self._refuse("unexpected", "unexpected", f"a broker does not accept {msg.TYPE}", data, source)

    def _drop(self, reason: str, source: Endpoint) -> list[Reply]:
        self.stats.dropped[reason] += 1
        log.debug("dropped (%s) a datagram from %s", reason, source)
        return []

    def _refuse(self, reason: str, code: str, text: str, request: bytes, source: Endpoint) -> list[Reply]:
        """Count the drop; answer with an error no larger than the request, if one fits."""
        self._drop(reason, source)
        error = bounded_error(code, text, len(request))
        if error is None:
            return []
        self.stats.errors_sent += 1
        return [(error, source)]

    # -- registration --------------------------------------------------------------------------
    def _register(self, msg: Register, data: bytes, source: Endpoint) -> list[Reply]:
        now = self.clock()
        self.expire(now)
        limits = self.limits
        if not fresh(msg.ts, self.wall(), limits.clock_skew_s):
            return self._refuse("stale", "stale", f"timestamp more than {limits.clock_skew_s:g}s off", data, source)
        room = self.rooms.get(msg.room)
        keys = room.keys if room else RoomKeys.from_secret(bytes.fromhex(room_secret(self.broker_key, msg.room)))
        if not verify(msg, keys.to_broker):
            return self._refuse("unauthenticated", "unauthorized", "register MAC does not verify", data, source)
        # Authenticated from here on. A replay (the same MAC again) gets no answer: its sender
        # already had one, and whoever replays it must learn nothing.
        member = room.members.get(msg.peer) if room else None
        window = member.window if member else self._floor(msg.room, msg.peer)
        if window is not None and window.replayed(msg):
            return self._drop("replay", source)
        if member is None or member.txn != msg.txn:  # a join: into the broker-wide cache
            if msg.mac in self.replays:
                return self._drop("replay", source)
            if len(self.replays) >= limits.replay_entries:
                return self._refuse("replay-cache-full", "busy", "too many registrations, retry", data, source)
            self.replays[msg.mac] = now + 2 * limits.clock_skew_s + 1
        if room is None:
            if len(self.rooms) >= limits.max_rooms:
                return self._refuse("rooms-full", "busy", "too many rooms, retry later", data, source)
            room = self.rooms[msg.room] = Room(msg.room, keys, now)
        if member is None and len(room.members) >= limits.room_size:
            log.info("register room=%s peer=%s from %s refused: room full", msg.room, msg.peer, source)
            return self._refuse("room-full", "room-full", f"room has {limits.room_size} members", data, source)
        return self._admit(room, member, msg, source, now)

    def _admit(self, room: Room, member: Member | None, msg: Register, source: Endpoint, now: float) -> list[Reply]:
        self.stats.registrations += 1
        joined = member is None or member.txn != msg.txn  # a new member, or one that started again
        moved = not joined and member is not None and member.endpoint != source
        if joined or moved:
            how = "" if member is None else " (started again)" if joined else " (endpoint changed)"
            log.info("register room=%s peer=%s from %s private %s%s", room.name, msg.peer, source, msg.private, how)
        if joined:
            room.session = None  # whoever was introduced before is not this member: a new session
        window = member.window if member else self.floors.pop((room.name, msg.peer), (0.0, RegisterWindow()))[1]
        me = room.members[msg.peer] = Member(msg.peer, source, msg.private, msg.txn, now, msg.relay,
                                          (msg.predicted_port, msg.predicted_count), window)
        window.accepted(msg)
        partner = next((m for m in room.members.values() if m.peer != msg.peer), None)
        if partner is None:
            return [(self._signed(room, Waiting(room.name, msg.txn, source)), source)]
        if room.session is None:
            room.session = self.new_session()
        replies = [(self._intro(room, me, partner), source)]
        if joined or moved:
            # The room just became complete (or changed): tell the member who was there too.
            self.stats.introductions += 1
            log.info("intro room=%s %s@%s <-> %s@%s", room.name, me.peer, source, partner.peer, partner.endpoint)
            replies.append((self._intro(room, partner, me), partner.endpoint))
        return replies

    def _intro(self, room: Room, to: Member, partner: Member) -> bytes:
        assert room.session is not None
        intro = Intro(room.name, to.txn, to.endpoint, partner.peer, partner.endpoint, partner.private, room.session,
                      partner_relay=partner.relay, partner_predicted_port=partner.predicted[0],
                      partner_predicted_count=partner.predicted[1])
        return self._signed(room, intro)

    @staticmethod
    def _signed(room: Room, msg: Message) -> bytes:
        return encode(sign(msg, room.keys.from_broker))

    # -- expiry --------------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> None:
        """Forget silent members, rooms past their lifetime or left empty, and old replay entries."""
        now = self.clock() if now is None else now
        while self.replays and next(iter(self.replays.values())) <= now:
            self.replays.popitem(last=False)
        while self.floors and next(iter(self.floors.values()))[0] <= now:
            self.floors.popitem(last=False)
        for name in list(self.rooms):
            room = self.rooms[name]
            if now - room.created > self.limits.room_lifetime_s:
                for member in room.members.values():
                    self._forget(room, member, now)
                del self.rooms[name]
                self.stats.expired_rooms += 1
                log.info("expired room=%s (lifetime %.0fs over)", name, self.limits.room_lifetime_s)
                continue
            for peer, member in list(room.members.items()):
                if now - member.last_seen > self.limits.member_ttl_s:
                    self._forget(room, member, now)
                    del room.members[peer]
                    room.session = None
                    self.stats.expired_members += 1
                    log.info("expired room=%s peer=%s (silent for %.0fs)", name, peer, now - member.last_seen)
            if not room.members:
                del self.rooms[name]

    def _forget(self, room: Room, member: Member, now: float) -> None:
        """Keep a forgotten member's register window while its registers could be fresh: with a member
        silence shorter than twice the clock skew, one replayed would otherwise make it a member again.
        As many as members forgotten in 61 s: bounded by the rooms and the joins."""
        key = (room.name, member.peer)
        self.floors.pop(key, None)
        self.floors[key] = (now + 2 * self.limits.clock_skew_s + 1, member.window)

    def _floor(self, room: str, peer: str) -> RegisterWindow | None:
        kept = self.floors.get((room, peer))
        return kept[1] if kept else None

