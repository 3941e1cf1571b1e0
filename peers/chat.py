"""The seed's chat, kept: the broker pairs two people, then every line goes straight to the other.

    NATLAB_ROOM_SECRET=<hex> python3 -m peers.chat --broker 198.51.100.10:3478 --room chat --id a

(`make chat-a` and `make chat-b` attach to the lab's two peers this way.) The peer registers,
is introduced, punches with the same HolePunch as `peers.peer punch`, and says in status lines
(`*** ...`) when the partner was found and over which of its endpoints (public or private) the
path opened. Then each typed line is sent directly, as session-signed Data, and shows up on the
other side as `b> text`; lines typed earlier wait until the path is open. Each line is
retransmitted until acknowledged (Ack), so a lost datagram loses no line and a repeated one
prints once; idle paths are kept open with signed probes (NAT mappings time out). End of input
(Ctrl-D) or Ctrl-C sends a Bye: the other side says so and ends too.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from peers.peer import Channel, HolePunch, local_ip_towards, rendezvous, room_keys
from wire.auth import CredentialError
from wire.protocol import MAX_TEXT, Ack, Bye, Data, Endpoint, Message

RETRY_S = 0.5  # an unacknowledged line or bye goes again after this long
MAX_TRIES = 10
KEEPALIVE_S = 10.0  # well inside the lab's 30 s UDP mapping timeout
SILENCE_S = 45.0  # nothing from the partner for this long, keepalives included: it is gone
PUNCH_S = 15.0  # after the introduction, to open the path
BYE_WAIT_S = 1.5  # how long a leaving side waits for its bye to be acknowledged


def say(text: str) -> None:
    print(f"*** {text}", flush=True)


def chunks(line: str) -> list[str]:
    """A typed line as texts that fit one Data message each (long lines arrive as several)."""
    return [line[i:i + MAX_TEXT] for i in range(0, len(line), MAX_TEXT)] or [""]


@dataclass
class Pending:
    msg: Message
    due: float
    tries: int = 0


@dataclass
class ChatSession:
    """The line protocol, free of sockets and terminals: what to send, what to show, when it ends."""

    room: str
    me: str
    partner: str
    next_seq: int = 1
    pending: dict[int, Pending] = field(default_factory=dict)  # seq -> unacknowledged Data or Bye
    shown: set[int] = field(default_factory=set)  # the partner's seqs already shown
    leaving: bool = False
    partner_left: bool = False
    undelivered: int = 0

    def _queue(self, msg: Message, now: float) -> None:
        self.pending[msg.seq] = Pending(msg, now)  # type: ignore[attr-defined]

    def type_line(self, line: str, now: float) -> None:
        for text in chunks(line):
            self._queue(Data(self.room, self.me, self.next_seq, text), now)
            self.next_seq += 1

    def leave(self, now: float) -> None:
        if not self.leaving:
            self.leaving = True
            self._queue(Bye(self.room, self.me, self.next_seq), now)
            self.next_seq += 1

    def due(self, now: float) -> list[Message]:
        """What to (re)send now; lines tried MAX_TRIES times are given up (and counted)."""
        out = []
        for seq, p in list(self.pending.items()):
            if p.due > now:
                continue
            if p.tries >= MAX_TRIES:
                del self.pending[seq]
                self.undelivered += isinstance(p.msg, Data)
                continue
            p.tries += 1
            p.due = now + RETRY_S
            out.append(p.msg)
        return out

    def next_due(self) -> float | None:
        return min((p.due for p in self.pending.values()), default=None)

    def received(self, msg: Message) -> tuple[list[Message], list[str]]:
        """The partner's (verified) message: acks to send back, lines to show."""
        if isinstance(msg, Ack):
            self.pending.pop(msg.seq, None)
            return [], []
        if isinstance(msg, (Data, Bye)):
            ack: list[Message] = [Ack(self.room, self.me, msg.seq)]
            if msg.seq in self.shown:
                return ack, []  # a retransmission whose ack was lost: acknowledge again, show once
            self.shown.add(msg.seq)
            if isinstance(msg, Bye):
                self.partner_left = True
                return ack, []
            return ack, [f"{self.partner}> {msg.text}"]
        return [], []

    @property
    def finished(self) -> bool:
        """We left and the bye was acknowledged (or given up), or the partner left."""
        return self.partner_left or (self.leaving and not any(isinstance(p.msg, Bye) for p in self.pending.values()))


class Terminal:
    """Typed lines from a file descriptor (a terminal or a pipe), without Python's buffering."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer, self.closed = fd, b"", False

    def read_lines(self) -> list[str]:
        data = os.read(self.fd, 4096)
        if not data:
            self.closed = True
            data = b"\n" if self.buffer else b""  # a last line without its newline still counts
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode(errors="replace").rstrip("\r") for line in lines]


def chat(args: argparse.Namespace) -> int:
    broker = Endpoint.parse(args.broker)
    keys = room_keys(args.secret)
    chan = Channel((local_ip_towards(broker), args.port))
    term = Terminal(sys.stdin.fileno())
    try:
        say(f"you are {args.id} in room {args.room}; waiting for your partner at the broker {broker}")
        try:
            intro = rendezvous(chan, broker, args.room, args.id, keys, time.monotonic() + args.wait)
        except TimeoutError as exc:
            say(f"no partner came ({exc})")
            return 1
        say(f"found {intro.partner}: public endpoint {intro.partner_endpoint}, private endpoint "
            f"{intro.partner_private}; punching a hole (the broker is not used from here on)")
        return talk(chan, HolePunch(chan, intro, args.id, time.monotonic(), keys), term)
    finally:
        chan.close()


def talk(chan: Channel, hole: HolePunch, term: Terminal) -> int:
    intro = hole.intro
    session = ChatSession(intro.room, hole.me, intro.partner)
    punch_deadline = time.monotonic() + PUNCH_S
    announced = False
    heard = keepalive = time.monotonic()
    while True:
        now = time.monotonic()
        if hole.open and not announced:
            announced = True
            say(f"connected to {intro.partner} over its {hole.path}; type lines, Ctrl-D or Ctrl-C to leave")
        if not hole.open and now > punch_deadline:
            say(f"could not reach {intro.partner} directly within {PUNCH_S:g}s")
            return 1
        if hole.open and now - heard > SILENCE_S:
            say(f"{intro.partner} is gone (nothing heard for {SILENCE_S:g}s)")
            return 1
        wake = [now + 1.0]
        if (probe_at := hole.tick(now)) is not None:
            wake.append(probe_at)
        if hole.open:
            for msg in session.due(now):
                hole.send(msg)
            if now - keepalive > KEEPALIVE_S:
                hole.keepalive()
                keepalive = now
            if (at := session.next_due()) is not None:
                wake.append(at)
        if session.finished:
            if session.partner_left:
                say(f"{intro.partner} left the chat")
            if session.undelivered:
                say(f"{session.undelivered} line(s) were not acknowledged")
            say("bye")
            return 0
        try:
            timeout = max(0.0, min(wake) - time.monotonic())
            watched = [chan.sock] if term.closed or session.leaving else [chan.sock, term.fd]
            ready, _, _ = select.select(watched, [], [], timeout)
            if term.fd in ready:
                lines = term.read_lines()
                if any(lines) and not hole.open:
                    say("(kept until the path is open)")
                for line in lines:
                    session.type_line(line, time.monotonic())
                if term.closed:
                    leave(session, hole)
            if chan.sock in ready:
                got = chan.receive(time.monotonic() + 0.01)  # readable now: returns at once
                if got is not None and hole.on_datagram(got[0], got[1], time.monotonic()):
                    heard = time.monotonic()
                    replies, shown = session.received(got[0])
                    for reply in replies:
                        hole.send(reply)
                    for line in shown:
                        print(line, flush=True)
        except KeyboardInterrupt:
            leave(session, hole)


def leave(session: ChatSession, hole: HolePunch) -> None:
    """Say bye; wait a moment for the acknowledgement (its retries are due() like any line)."""
    session.leave(time.monotonic())
    if not hole.open:
        session.pending.clear()  # nobody to tell
    for p in session.pending.values():
        if isinstance(p.msg, Bye):
            p.tries = max(p.tries, MAX_TRIES - int(BYE_WAIT_S / RETRY_S))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.chat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True, help="broker endpoint IP:PORT")
    parser.add_argument("--room", default="chat")
    parser.add_argument("--id", required=True, help="your name in the room (a, b, ...)")
    parser.add_argument("--secret", help="the room secret, 64 hex digits (default: $NATLAB_ROOM_SECRET)")
    parser.add_argument("--port", type=int, default=0, help="local UDP port (0: any)")
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the partner")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C says bye, even if started with it ignored
    try:
        return chat(args)
    except CredentialError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        say("bye")
        return 130


if __name__ == "__main__":
    sys.exit(main())
