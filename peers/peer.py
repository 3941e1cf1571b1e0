"""The peer: rendezvous at the broker, punch a hole to the partner, exchange messages directly.

    NATLAB_ROOM_SECRET=<hex> python3 -m peers.peer punch --broker 198.51.100.10:3478 --room demo --id a
    python3 -m peers.peer reach --to 198.51.100.10:3478 --tag control-no-bypass

`punch` prints one JSON object on stdout (the result); progress goes to stderr. The room secret
(--secret or NATLAB_ROOM_SECRET, minted by server.broker_key) signs the registration and
checks the broker's introduction; the session it introduces signs everything after. After the
introduction the peer never sends to the broker again: everything else goes to the partner,
on the same socket, so the NAT mapping the broker saw is the one the partner punches to.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

from wire.auth import SECRET_ENV, CredentialError, RoomKeys, new_nonce, parse_secret, sign, verify
from wire.protocol import (
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
    Register,
    Waiting,
    encode,
    try_decode,
)

REGISTER_INTERVAL = 0.5
PROBE_INTERVAL = 0.05
DATA_INTERVAL = 0.01
LINGER = 0.3  # after the exchange, answer late probes for this long
SESSION_TYPES = (Probe, Data, Ack, Bye)  # what partners exchange, each signed with the session key


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def local_ip_towards(dest: Endpoint) -> str:
    """The address the kernel would send from: connect() on UDP sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(dest.to_tuple())
        return s.getsockname()[0]


class Channel:
    """One UDP socket, with receive-until-deadline and decoding."""

    def __init__(self, bind: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)

    @property
    def local(self) -> Endpoint:
        ip, port = self.sock.getsockname()
        return Endpoint(ip, port)

    def send(self, msg: Message, to: Endpoint) -> None:
        self.sock.sendto(encode(msg), to.to_tuple())

    def receive(self, until: float) -> tuple[Message, Endpoint] | None:
        """The next valid message before the monotonic deadline `until`, or None."""
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            data, addr = self.sock.recvfrom(2048)
            msg = try_decode(data)
            if msg is not None:
                return msg, Endpoint(addr[0], addr[1])

    def close(self) -> None:
        self.sock.close()


@dataclass
class PunchResult:
    peer: str
    room: str
    ok: bool = False
    error: str | None = None
    private: str | None = None
    public: str | None = None
    partner: str | None = None
    partner_public: str | None = None
    partner_private: str | None = None
    partner_heard_from: str | None = None
    path: str | None = None  # which of the partner's endpoints answered: public or private
    punch_delay_s: float = 0.0
    time_to_intro_s: float | None = None
    time_to_punch_s: float | None = None
    probes_sent: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    received_seqs: list[int] = field(default_factory=list)
    rejected: int = 0  # datagrams that claimed the session and failed its proof (or replayed it)


def rendezvous(chan: Channel, broker: Endpoint, room: str, peer: str, keys: RoomKeys, deadline: float) -> Intro:
    """Register until the broker introduces the partner. Raises TimeoutError.

    Each register is signed afresh (new timestamp and nonce: the broker refuses a replay). Only
    an introduction signed with the room's key, answering our own transaction, is believed; a
    broker's error is reported but not believed either (anyone can forge one), so registering
    goes on until the deadline, and the last error is in the TimeoutError.
    """
    txn = os.urandom(6).hex()
    private = chan.local
    announced_wait = False
    refused: str | None = None
    while time.monotonic() < deadline:
        register = Register(room, peer, txn, private, int(time.time()), new_nonce())
        chan.send(sign(register, keys.to_broker), broker)
        resend_at = min(deadline, time.monotonic() + REGISTER_INTERVAL)
        while (got := chan.receive(resend_at)) is not None:
            msg, source = got
            if source != broker:
                continue  # nothing but the broker can speak before the introduction
            if isinstance(msg, Error):
                if refused is None:
                    log(f"peer {peer}: broker says {msg.code}: {msg.reason} (registering on)")
                refused = f"{msg.code}: {msg.reason}"
                continue
            if not isinstance(msg, (Intro, Waiting)) or msg.txn != txn or msg.room != room:
                continue
            if not verify(msg, keys.from_broker):
                log(f"peer {peer}: ignored a {msg.TYPE} from {source} that the room key does not sign")
                continue
            if isinstance(msg, Intro):
                return msg
            if not announced_wait:
                log(f"peer {peer}: registered as {msg.you}, waiting for a partner in room {room}")
                announced_wait = True
    raise TimeoutError("no introduction from the broker" + (f" (the broker said {refused})" if refused else ""))


def path_name(heard_from: Endpoint, intro: Intro) -> str:
    """Over which of the partner's endpoints the hole opened, as people read it."""
    if heard_from == intro.partner_private and intro.partner_private != intro.partner_endpoint:
        return f"private endpoint {heard_from} (same network, no NAT between)"
    if heard_from == intro.partner_endpoint:
        return f"public endpoint {heard_from}"
    return f"public address {heard_from} (its NAT chose another port than the broker saw)"


class HolePunch:
    """Probing towards one partner until both sides have heard each other.

    Probes go out every PROBE_INTERVAL from `start_at` on, to both endpoints the broker gave:
    the public one (the partner's NAT) and the private one (reachable when both sit behind the
    same NAT; elsewhere it fails at once or dies on the way). The first datagram heard from the
    partner opens the hole; from then on every packet goes to the address it actually came from
    (which differs from the introduced one behind some NATs). Probes stop once the partner has
    shown it hears us too (an acknowledging probe, or data). A probe that does not acknowledge
    is answered at once, so a partner whose probes were dropped still learns the hole is open.

    Only the partner is heard: a datagram counts if it is signed with the session key, names
    this room and the partner, and (to move the target) is newer than any before of its type;
    everything else is counted in `rejected` and changes nothing.
    """

    def __init__(self, chan: Channel, intro: Intro, me: str, start_at: float, keys: RoomKeys) -> None:
        self.chan, self.intro, self.me, self.start_at = chan, intro, me, start_at
        self.key = keys.session(intro.session)
        self.candidates = list(dict.fromkeys([intro.partner_endpoint, intro.partner_private]))
        self.target = intro.partner_endpoint
        self.heard_at: float | None = None
        self.heard_from: Endpoint | None = None
        self.partner_acked = False
        self.probes_sent = 0
        self.rejected = 0
        self.newest: dict[str, int] = {}  # message type -> highest seq heard from the partner
        self.next_probe = start_at

    @property
    def open(self) -> bool:
        return self.heard_at is not None

    @property
    def probing(self) -> bool:
        return not (self.open and self.partner_acked)

    @property
    def path(self) -> str | None:
        return None if self.heard_from is None else path_name(self.heard_from, self.intro)

    def send(self, msg: Message, to: Endpoint | None = None) -> bool:
        """Sign with the session key and send (to the target by default); False if the kernel refused."""
        try:
            self.chan.send(sign(msg, self.key), to or self.target)
        except OSError:  # e.g. no route to a private endpoint in another network
            return False
        return True

    def _probe(self, to: list[Endpoint]) -> None:
        probe = Probe(self.intro.room, self.me, self.probes_sent, self.open)
        if any([self.send(probe, ep) for ep in to]):
            self.probes_sent += 1

    def tick(self, now: float) -> float | None:
        """Send what is due; return when to be woken next for probing (None: no more probes)."""
        if now < self.start_at:
            return self.start_at
        if not self.probing:
            return None
        if now >= self.next_probe:
            self._probe([self.target] if self.open else self.candidates)
            self.next_probe = now + PROBE_INTERVAL
        return self.next_probe

    def keepalive(self) -> None:
        """A signed, acknowledging probe to the partner: keeps the NAT mappings open while nobody speaks."""
        self._probe([self.target])

    def genuine(self, msg: Message) -> bool:
        """Signed by the partner for this session and this room."""
        return (isinstance(msg, SESSION_TYPES) and msg.room == self.intro.room and msg.sender == self.intro.partner
                and verify(msg, self.key))

    def on_datagram(self, msg: Message, source: Endpoint, now: float) -> bool:
        """Account for a datagram; True if it is the partner's (a replayed one included: callers dedupe)."""
        if not isinstance(msg, SESSION_TYPES):
            return False
        if not self.genuine(msg):
            self.rejected += 1
            return False
        newest = msg.seq > self.newest.get(msg.TYPE, -1)
        if not newest:
            self.rejected += isinstance(msg, Probe)  # a probe heard twice is a replay: it changes nothing
            return not isinstance(msg, Probe)
        self.newest[msg.TYPE] = msg.seq
        if self.heard_at is None:
            self.heard_at, self.heard_from = now, source
            log(f"peer {self.me}: hole open, heard {self.intro.partner} from {source}")
        self.target = source
        if isinstance(msg, Data) or (isinstance(msg, Probe) and msg.ack):
            self.partner_acked = True
        elif isinstance(msg, Probe) and now >= self.start_at:
            self._probe([source])
        return True

    @property
    def time_to_punch(self) -> float | None:
        return None if self.heard_at is None else max(0.0, self.heard_at - self.start_at)


def room_keys(secret: str | None) -> RoomKeys:
    """The room's keys from --secret, else NATLAB_ROOM_SECRET; CredentialError when neither is right."""
    return RoomKeys.from_secret(parse_secret(secret or os.environ.get(SECRET_ENV)))


def punch(args: argparse.Namespace) -> PunchResult:
    broker = Endpoint.parse(args.broker)
    result = PunchResult(peer=args.id, room=args.room, punch_delay_s=args.punch_delay)
    keys = room_keys(args.secret)
    chan = Channel((local_ip_towards(broker), args.port))
    result.private = str(chan.local)
    start = time.monotonic()
    deadline = start + args.timeout
    try:
        intro = rendezvous(chan, broker, args.room, args.id, keys, deadline)
    except TimeoutError as exc:
        result.error = str(exc)
        chan.close()
        return result
    introduced = time.monotonic()
    result.time_to_intro_s = round(introduced - start, 4)
    result.public, result.partner, result.partner_public = str(intro.you), intro.partner, str(intro.partner_endpoint)
    result.partner_private = str(intro.partner_private)
    log(f"peer {args.id}: introduced to {intro.partner} at {intro.partner_endpoint} (private {intro.partner_private});"
        f" I am {intro.you}")
    # From here on the broker is never addressed again.
    hole = HolePunch(chan, intro, args.id, introduced + args.punch_delay, keys)
    received: set[int] = set()
    sent = 0
    next_data = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        wake = [deadline]
        probe_at = hole.tick(now)
        if probe_at is not None:
            wake.append(probe_at)
        if hole.open and sent < args.messages:
            if now >= next_data:
                sent += 1
                hole.send(Data(args.room, args.id, sent, f"hello #{sent} from {args.id}"))
                next_data = now + DATA_INTERVAL
            wake.append(next_data)
        if sent >= args.messages and len(received) >= args.messages:
            break
        got = chan.receive(min(wake))
        if got is not None and hole.on_datagram(got[0], got[1], time.monotonic()) and isinstance(got[0], Data):
            received.add(got[0].seq)
    # Answer late probes for a moment, so a partner that missed our acknowledgement can finish.
    linger_until = time.monotonic() + LINGER
    while (got := chan.receive(linger_until)) is not None:
        hole.on_datagram(got[0], got[1], time.monotonic())
    chan.close()
    result.probes_sent = hole.probes_sent
    result.partner_heard_from = str(hole.heard_from) if hole.heard_from else None
    result.path = hole.path
    result.rejected = hole.rejected
    result.time_to_punch_s = None if hole.time_to_punch is None else round(hole.time_to_punch, 4)
    result.messages_sent = sent
    result.messages_received = len(received)
    result.received_seqs = sorted(received)
    result.ok = hole.open and sent == args.messages and len(received) == args.messages
    if not result.ok:
        result.error = "no packet from the partner" if not hole.open else "exchange incomplete before timeout"
    return result


def reach(targets: list[tuple[Endpoint, str]], attempts: int, wait: float) -> list[dict]:
    """Send tagged pings to each endpoint (all in the same rounds) and report, per endpoint, whether
    any pong came back. Several targets share one socket: a control of a hundred pairs is one process."""
    chan = Channel(("0.0.0.0", 0))
    replies = {target: 0 for target, _ in targets}
    errors: dict[Endpoint, str] = {}
    try:
        for seq in range(attempts):
            for target, tag in targets:
                if target in errors:
                    continue
                try:
                    chan.send(Ping(tag, seq), target)
                except OSError as exc:  # e.g. no route: that is an answer too
                    errors[target] = str(exc)
            until = time.monotonic() + wait
            while (got := chan.receive(until)) is not None:
                if isinstance(got[0], Pong) and (got[1], got[0].tag) in targets:
                    replies[got[1]] += 1
    finally:
        chan.close()
    return [{"to": str(target), "tag": tag, "sent": 0 if target in errors else attempts, "replies": replies[target],
             "reached": replies[target] > 0, **({"error": errors[target]} if target in errors else {})}
            for target, tag in targets]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.peer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("punch", help="rendezvous, punch, exchange messages; print a JSON result")
    p.add_argument("--broker", required=True, help="broker endpoint IP:PORT")
    p.add_argument("--room", required=True)
    p.add_argument("--id", required=True, help="this peer's name in the room")
    p.add_argument("--secret", help=f"the room secret, 64 hex digits (default: ${SECRET_ENV})")
    p.add_argument("--port", type=int, default=0, help="local UDP port (0: any)")
    p.add_argument("--messages", type=int, default=10, help="messages to send each way")
    p.add_argument("--punch-delay", type=float, default=0.0, help="seconds to wait after the introduction before probing")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds for the whole run")
    r = sub.add_parser("reach", help="ping endpoints; print one JSON line saying, per target, whether it answered")
    r.add_argument("--to", required=True, action="append", help="IP:PORT (repeat for several, each with its --tag)")
    r.add_argument("--tag", required=True, action="append", help="names the experiment in the captures")
    r.add_argument("--attempts", type=int, default=3)
    r.add_argument("--wait", type=float, default=0.5, help="seconds to wait for each answer")
    args = parser.parse_args(argv)
    if args.command == "punch":
        try:
            result = punch(args)
        except CredentialError as exc:
            parser.error(str(exc))
        print(json.dumps(asdict(result)), flush=True)
        return 0 if result.ok else 1
    if len(args.to) != len(args.tag):
        parser.error("give one --tag for each --to")
    outcomes = reach([(Endpoint.parse(to), tag) for to, tag in zip(args.to, args.tag)], args.attempts, args.wait)
    print(json.dumps({"targets": outcomes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
