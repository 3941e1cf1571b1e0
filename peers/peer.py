"""The peer: rendezvous at the broker, punch a hole to the partner, exchange messages directly.

    NATLAB_ROOM_SECRET=<hex> python3 -m peers.peer punch --broker 198.51.100.10:3478 --room demo --id a
    python3 -m peers.peer reach --to 198.51.100.10:3478 --tag control-no-bypass
    python3 -m peers.peer kill --id a    # SIGKILL this node's punching peer a (the peer-killed fault)

`punch` prints one JSON object on stdout (the result); progress goes to stderr. The room secret
(--secret or NATLAB_ROOM_SECRET, minted by server.broker_key) signs the registration and
checks the broker's introduction; the session it introduces signs everything after. After the
introduction the peer sends to the broker again only if the partner goes quiet: everything else
goes to the partner, on the same socket, so the NAT mapping the broker saw is the one the partner
punches to.

With a relay (--turn, --relay auto or force) the peer first makes a TURN allocation and
registers its relayed address as a candidate, which the introduction hands to the partner (as
ICE does). With `auto` it punches directly first and falls back to the relayed path only if
the direct one is not confirmed both ways within the punch window; with `force` it uses the
relayed path only. Either way the session's messages are the same, signed the same.

With --predict auto (the default) the peer reads two of its NAT's mappings before registering
(STUN Binding requests from its own socket to the broker and to the broker's other address): a NAT
that maps per destination and hands ports out in order will give the flow to the partner one of
the next ports, which the peer announces in its register and the partner probes too
(wire/port_prediction.py).

A partner quiet for REBIND_SILENCE_S once the hole is open may sit behind a NAT that rebound
(changed its mapping): the peer registers again and punches anew to wherever the broker's new
introduction says (Reintroduction). A partner silent for PARTNER_SILENCE_S, our last
GONE_AFTER_UNANSWERED sends unanswered, is gone: the peer stops with that error rather than sending
until its timeout. A punching peer keeps its pid
in the node's file peer-<id>.pid, for `kill`.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.settings import node_file
from peers.relayed_path import RelayedPath, RelayError
from peers.stun_client import StunSocket, mapped
from wire.auth import SECRET_ENV, CredentialError, RoomKeys, new_nonce, parse_secret, sign, verify
from wire.port_prediction import Prediction, predict
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

REGISTER_INTERVAL = 0.5  # the least time between registers, whatever the broker's round trip
PROBE_INTERVAL = 0.05
DATA_INTERVAL = 0.01
LINGER = 0.3  # after the exchange, answer late probes and retransmissions until quiet this long (or 4 RTO)
INITIAL_RTO, MIN_RTO, MAX_RTO = 0.5, 0.05, 4.0  # RFC 6298's timer, with bounds for a lab's paths
MIN_BACKOFF_CAP = 0.2  # a doubled timeout stops growing at 2 RTO, or this: random loss is no congestion
MAX_TRIES = 40  # sends of one message at most
WINDOW = 32  # messages in flight at most: a partner gone silent is not sent hundreds more
FIRST_RTO_PER_BROKER_RTT = 3  # the punched path's first timeout, in round trips to the broker (both access links)
PUNCH_WINDOW_S = 5.0  # probing stops if the partner is not heard within this (or 8 broker round trips) of starting
PUNCH_WINDOW_PER_BROKER_RTT = 8
# Once the hole is open the partner speaks every few ms until it is done (data, acks, its Bye): this
# long without a word from it (or PARTNER_SILENCE_PER_RTO timeouts, on slow paths) it is gone, once
# GONE_AFTER_UNANSWERED of our sends in a row went unanswered too. Time alone is not enough: at 30%
# loss on both access links each way crosses two (51% lost), three round trips in four are lost, and
# the last message, sent again every 0.2 s, goes three seconds (16 sends) unanswered by chance one
# time in 80 (CI: 'the partner went silent', 10/10 received, 9/10 acknowledged); 40 sends in a row,
# one time in 60,000. A partner killed mid-exchange is still found at once: a window of messages in
# flight is 32 sends a round.
PARTNER_SILENCE_S = 3.0
PARTNER_SILENCE_PER_RTO = 4
GONE_AFTER_UNANSWERED = 40
REBIND_SILENCE_S = 1.0  # this quiet, the peer asks the broker where the partner is now (Reintroduction)
SESSION_TYPES = (Probe, Data, Ack, Bye)  # what partners exchange, each signed with the session key
RELAY_MODES = ("auto", "off", "force")
# Which of the partner's endpoints a peer probes: both the broker gave (all), or only the public one, as a
# stack that never tries private endpoints (behind one NAT it reaches its partner only if the NAT hairpins).
CANDIDATE_MODES = ("all", "public")
PREDICT_MODES = ("auto", "off")
PREDICT_WAIT_S = 0.2  # a Binding's first wait for its answer; doubled on each of PREDICT_TRIES
PREDICT_TRIES = 3
TURN_PASSWORD_ENV = "NATLAB_TURN_PASSWORD"
ALLOCATE_TIMEOUT_S = 5.0


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def local_ip_towards(dest: Endpoint) -> str:
    """The address the kernel would send from: connect() on UDP sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(dest.to_tuple())
        return s.getsockname()[0]


class Channel:
    """One UDP socket and, when the peer relays, its TURN allocation: receive-until-deadline and
    decoding over both, and sends that go through the relay to the endpoints reached through it."""

    def __init__(self, bind: tuple[str, int]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(bind)
        self.relay: RelayedPath | None = None
        self.relayed_peers: set[Endpoint] = set()  # reached through the relay: the partner's relayed address

    @property
    def local(self) -> Endpoint:
        ip, port = self.sock.getsockname()
        return Endpoint(ip, port)

    def send(self, msg: Message, to: Endpoint) -> None:
        if self.relay is not None and to in self.relayed_peers:
            self.relay.send(encode(msg), to)
        else:
            self.sock.sendto(encode(msg), to.to_tuple())

    def receive(self, until: float) -> tuple[Message, Endpoint] | None:
        """The next valid message before the monotonic deadline `until`, or None."""
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            sources = [self.sock] if self.relay is None else [self.sock, self.relay]
            ready, _, _ = select.select(sources, [], [], remaining)
            if not ready:
                return None
            if ready[0] is self.sock:
                data, addr = self.sock.recvfrom(2048)
                source = Endpoint(addr[0], addr[1])
            else:
                data, source = self.relay.read()  # type: ignore[union-attr]
            msg = try_decode(data)
            if msg is not None:
                return msg, source

    def close(self) -> None:
        self.sock.close()
        if self.relay is not None:
            self.relay.close()


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
    path: str | None = None  # which of the partner's endpoints answered: public, private or relayed
    route: str | None = None  # "direct", "local" (the partner's private endpoint) or "relayed": the exchange's path
    relay_mode: str = "off"
    relayed: str | None = None  # this peer's relayed candidate (its TURN allocation)
    partner_relayed: str | None = None
    relay_error: str | None = None  # why there is no relayed candidate, when one was asked for
    fell_back_after_s: float | None = None  # from the introduction to giving up on the direct path
    upgraded_after_s: float | None = None  # from the introduction to leaving the relay for a direct path after all
    punch_delay_s: float = 0.0
    punch_window_s: float | None = None  # how long it probed for before giving up, had it not heard the partner
    time_to_intro_s: float | None = None
    time_to_punch_s: float | None = None
    time_to_first_heard_s: float | None = None  # from the introduction to the first datagram heard from the partner
    rtt_ms: float | None = None  # the punched path's round trip: the median of its data/ack samples
    registers_sent: int = 0
    probes_sent: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    retransmissions: int = 0  # data datagrams sent again, unacknowledged in time
    acks_received: int = 0
    received_seqs: list[int] = field(default_factory=list)
    rejected: int = 0  # datagrams that claimed the session and failed its proof (or replayed it)
    partner_silent_s: float | None = None  # how long the partner had been silent when this peer stopped waiting
    registers_again: int = 0  # registers sent after the introduction, the partner quiet (Reintroduction)
    reintroductions: list[dict] = field(default_factory=list)  # introductions that moved somebody, and when
    prediction: dict | None = None  # this peer's port prediction: its NAT's two mappings and the ports announced
    partner_predicted: int = 0  # ports the partner announced (its prediction), probed beside its public endpoint
    opened_by_prediction: bool = False  # the partner was heard at one of its predicted ports


class RetransmitTimer:
    """RFC 6298's retransmission timer: a smoothed round trip and its variance make the timeout,
    which doubles for each send that goes unanswered (bounded for a lab's paths)."""

    def __init__(self, initial: float = INITIAL_RTO) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = initial
        self.samples: list[float] = []

    def sample(self, rtt: float, exact: bool = True) -> None:
        """A round trip; `exact` unless it is timed from a first send that was sent again: then it
        may be far too long (the first sends were lost), so it is taken only while there is no exact
        one, and only to shorten the timeout, never to lengthen it."""
        if not exact and (self.samples or rtt >= self.rto):
            return
        if exact:
            self.samples.append(rtt)
        if self.srtt is None or (exact and len(self.samples) == 1):
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(MAX_RTO, max(MIN_RTO, self.srtt + 4 * self.rttvar))

    def backoff(self, tries: int) -> float:
        """The wait before the next send of something already sent `tries` times: the timeout,
        doubled for each unanswered send up to 2 RTO. A lab's loss is random, not congestion, so
        the wait stays near the round trip instead of growing to seconds."""
        return min(self.backoff_cap(), self.rto * 2 ** (tries - 1))

    def backoff_cap(self) -> float:
        """The longest wait between two sends of one message: 2 RTO, within bounds."""
        return min(MAX_RTO, max(MIN_BACKOFF_CAP, 2 * self.rto))


def median_ms(samples: list[float]) -> float | None:
    """Round trips (s) as the peer reports them: their median in ms, taken as the verdict's check 6 takes
    it from the capture (with an even count, the mean of the two middle ones: the upper one alone
    strays by half their gap, tens of ms through jitter)."""
    return round(1000 * statistics.median(samples), 2) if samples else None


def signed_register(room: str, peer: str, txn: str, private: Endpoint, keys: RoomKeys,
                    relayed: Endpoint | None, predicted: Prediction | None = None) -> Message:
    """A register, signed afresh (new timestamp and nonce: the broker refuses a replay)."""
    guess = {"predicted_port": predicted.first, "predicted_count": predicted.count} if predicted else {}
    return sign(Register(room, peer, txn, private, int(time.time()), new_nonce(), relay=relayed, **guess),
                keys.to_broker)


def predicted_ports(chan: Channel, broker: Endpoint) -> tuple[Prediction | None, dict]:
    """Two mappings of this socket's NAT, to the broker and to its other address, and what they predict
    (None, and why, when the broker did not answer both); with the record for the peer's report."""
    stun_socket = StunSocket(sock=chan.sock)
    started = time.monotonic()
    first = stun_socket.binding(broker, wait=PREDICT_WAIT_S, tries=PREDICT_TRIES, backoff=2)
    other = Endpoint(*first.attributes["OTHER-ADDRESS"]) if first and "OTHER-ADDRESS" in first.attributes else None
    second = stun_socket.binding(other, wait=PREDICT_WAIT_S, tries=PREDICT_TRIES, backoff=2) if other else None
    record: dict = {"took_s": round(time.monotonic() - started, 4)}
    if first is None or second is None:
        record["why"] = (f"no STUN answer from {broker}" if first is None else
                         f"{broker} names no other address" if other is None else f"no STUN answer from {other}")
        return None, record
    guess = predict(mapped(first).port, mapped(second).port)
    record.update(mapped=[str(mapped(first)), str(mapped(second))], first=guess.first, count=guess.count, why=guess.why)
    return guess, record


def believed_intro(msg: Message, source: Endpoint, broker: Endpoint, room: str, txn: str, keys: RoomKeys) -> bool:
    """Whether a datagram is the broker's introduction answering our transaction, signed with the room key."""
    return (source == broker and isinstance(msg, Intro) and msg.txn == txn and msg.room == room
            and verify(msg, keys.from_broker))


def rendezvous(chan: Channel, broker: Endpoint, room: str, peer: str, keys: RoomKeys, deadline: float,
               counts: dict | None = None, relayed: Endpoint | None = None, txn: str | None = None,
               predicted: Prediction | None = None) -> Intro:
    """Register until the broker introduces the partner. Raises TimeoutError. `counts` is filled
    with "registers" (how many were sent) and "broker_rtt" (seconds, once a reply timed one).

    Each register is signed afresh (new timestamp and nonce: the broker refuses a replay). Only
    an introduction signed with the room's key, answering our own transaction, is believed; a
    broker's error is reported but not believed either (anyone can forge one), so registering
    goes on until the deadline, and the last error is in the TimeoutError.

    Registers are sent again while no introduction comes, every REGISTER_INTERVAL or twice the
    broker's measured round trip, whichever is longer; unanswered, the wait doubles (RFC 6298).
    """
    txn = txn or new_transaction()
    private = chan.local
    announced_wait = False
    refused: str | None = None
    timer = RetransmitTimer(REGISTER_INTERVAL)
    unanswered = 0
    counts = {} if counts is None else counts
    while time.monotonic() < deadline:
        sent_at = time.monotonic()
        chan.send(signed_register(room, peer, txn, private, keys, relayed, predicted), broker)
        counts["registers"] = counts.get("registers", 0) + 1
        unanswered += 1
        wait = max(REGISTER_INTERVAL, 2 * timer.srtt) if timer.srtt is not None else timer.backoff(unanswered)
        resend_at = min(deadline, sent_at + wait)
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
            if unanswered == 1 and timer.srtt is None:  # Karn: only a reply to the one register sent times it
                timer.sample(time.monotonic() - sent_at)
                counts["broker_rtt"] = timer.srtt
            if isinstance(msg, Intro):
                return msg
            unanswered = 0
            if not announced_wait:
                log(f"peer {peer}: registered as {msg.you}, waiting for a partner in room {room}")
                announced_wait = True
    raise TimeoutError("no introduction from the broker" + (f" (the broker said {refused})" if refused else ""))


def new_transaction() -> str:
    return os.urandom(6).hex()


class Reintroduction:
    """The broker again, after the hole had opened: a partner quiet for REBIND_SILENCE_S may be behind
    a NAT that changed its mapping (rebinding: a router restarted, its conntrack flushed), or our own
    NAT may have. The peer registers again, with its first transaction, every REGISTER_INTERVAL while
    the quiet lasts: the broker sees the endpoint that moved and introduces both sides again, so each
    learns where the other is now. An introduction for the transaction is believed whenever it comes
    (the partner's re-registering sends us one too); one that changes nothing is no news."""

    def __init__(self, chan: Channel, broker: Endpoint, room: str, peer: str, keys: RoomKeys, txn: str,
                 relayed: Endpoint | None) -> None:
        self.chan, self.broker, self.room, self.peer, self.keys, self.txn = chan, broker, room, peer, keys, txn
        self.relayed = relayed
        self.next_register: float | None = None
        self.registers = 0

    def tick(self, now: float, quiet_since: float, quiet_limit: float) -> float:
        """Register again if the partner has been quiet past `quiet_limit`; when to be woken next."""
        if now - quiet_since < quiet_limit:
            self.next_register = None
            return quiet_since + quiet_limit
        if self.next_register is None or now >= self.next_register:
            self.chan.send(signed_register(self.room, self.peer, self.txn, self.chan.local, self.keys, self.relayed),
                           self.broker)
            self.registers += 1
            self.next_register = now + REGISTER_INTERVAL
        return self.next_register

    def news(self, msg: Message, source: Endpoint, current: Intro) -> Intro | None:
        """The broker's introduction, if this datagram is one and it moves somebody; else None."""
        if not believed_intro(msg, source, self.broker, self.room, self.txn, self.keys):
            return None
        assert isinstance(msg, Intro)
        same = (msg.session, msg.you, msg.partner_endpoint) == (current.session, current.you, current.partner_endpoint)
        return None if same else msg


def path_name(heard_from: Endpoint, intro: Intro) -> str:
    """Over which of the partner's endpoints the hole opened, as people read it."""
    if heard_from == intro.partner_relay:
        return f"relayed address {heard_from} (its TURN allocation)"
    if heard_from == intro.partner_private and intro.partner_private != intro.partner_endpoint:
        return f"private endpoint {heard_from} (same network, no NAT between)"
    if heard_from == intro.partner_endpoint:
        return f"public endpoint {heard_from}"
    if heard_from in intro.partner_predicted:
        return f"predicted endpoint {heard_from} (port prediction: its NAT gave the next port up)"
    return f"public address {heard_from} (its NAT chose another port than the broker saw)"


class HolePunch:
    """Probing towards one partner until both sides have heard each other.

    Probes go out every PROBE_INTERVAL from `start_at` on, to both endpoints the broker gave
    (`candidates` "all"; "public": the public one only): the private one (reachable when both sit
    behind the same NAT; elsewhere it fails at once or dies on the way) and the public one (the
    partner's NAT), and to the ports the partner predicted, if it did, before the public one: two
    NATs that both hand ports out in order then map each probe of one to the port the other aims at.
    The first datagram heard from the partner opens the hole; from then on every
    packet goes to the address it actually came from (which differs from the introduced one behind
    some NATs), except that a private endpoint heard stays the target (the local path wins). Probes stop once the partner has
    shown it hears us too (an acknowledging probe, or data). A probe that does not acknowledge
    is answered at once, so a partner whose probes were dropped still learns the hole is open.

    Only the partner is heard: a datagram counts if it is signed with the session key, names
    this room and the partner, and (to move the target) is newer than any before of its type;
    everything else is counted in `rejected` and changes nothing.

    A hole made `after` another (a new introduction: the partner moved) numbers its probes on from
    the old one's, so that none repeats a datagram already sent, and in the same session keeps
    what was heard.

    relay_over() moves it to the partner's relayed address: from then on that is the only target,
    probed until heard and acknowledged there. A fallback may be undone (ICE's upgrade): the two
    windows start at the two introductions, which loss can set seconds apart, so one peer may give up
    while the other still probes directly, and the partner's allocation refuses our relayed datagrams
    until the partner itself relays. So a direct probe that does not acknowledge is still answered
    directly, and data or an acknowledging probe from the partner directly (it hears us: the direct
    path works both ways) moves the hole back to it. A relay forced `for_good` stays.
    """

    def __init__(self, chan: Channel, intro: Intro, me: str, start_at: float, keys: RoomKeys,
                 after: HolePunch | None = None, candidates: str = "all") -> None:
        self.chan, self.intro, self.me, self.start_at = chan, intro, me, start_at
        self.key = keys.session(intro.session)
        # The private endpoint first: on one LAN its probe arrives before the hairpinned copy of the same probe
        # (the receiver counts a seq once), so the local path is the one heard.
        private = [intro.partner_private] if candidates == "all" else []
        self.candidates = list(dict.fromkeys([*private, *intro.partner_predicted, intro.partner_endpoint]))
        self.target = intro.partner_endpoint
        self.relayed = False
        self.relayed_for_good = False
        self.punch_start = start_at
        self.upgraded_at: float | None = None  # when a fallback to the relay was undone
        self.heard_at: float | None = None
        self.heard_from: Endpoint | None = None
        self.partner_acked = False
        self.probes_sent = 0
        self.rejected = 0
        self.newest: dict[str, int] = {}  # message type -> highest seq heard from the partner
        self.next_probe = start_at
        if after is not None:  # a punch anew (a new introduction): its probes are new ones, never repeats
            self.probes_sent, self.rejected = after.probes_sent, after.rejected
            if after.intro.session == intro.session:  # and what the session already heard stays heard
                self.newest = dict(after.newest)

    @property
    def open(self) -> bool:
        return self.heard_at is not None

    @property
    def probing(self) -> bool:
        return not (self.open and self.partner_acked)

    @property
    def confirmed(self) -> bool:
        """Both ways: the partner heard, and it has shown it hears us."""
        return self.open and self.partner_acked

    @property
    def path(self) -> str | None:
        return None if self.heard_from is None else path_name(self.heard_from, self.intro)

    def relay_over(self, now: float, for_good: bool = False) -> None:
        """Give up the direct path: probe the partner's relayed address, and only it, from now; `for_good`:
        never take the direct path again (the relay forced)."""
        relayed = self.intro.partner_relay
        assert relayed is not None
        self.relayed, self.relayed_for_good = True, for_good
        self.candidates, self.target = [relayed], relayed
        self.heard_at = self.heard_from = None
        self.partner_acked = False
        self.start_at = self.next_probe = now

    def send(self, msg: Message, to: Endpoint | None = None) -> bool:
        """Sign with the session key and send (to the target by default); False if the kernel refused."""
        try:
            self.chan.send(sign(msg, self.key), to or self.target)
        except OSError:  # e.g. no route to a private endpoint in another network
            return False
        return True

    def _upgrade(self, direct: Endpoint, now: float) -> None:
        """Back from the relay to the direct path, which the partner has shown works both ways."""
        self.relayed = False
        self.candidates, self.target = [direct], direct
        self.heard_at, self.heard_from, self.partner_acked = now, direct, True
        self.start_at, self.upgraded_at = self.punch_start, now
        log(f"peer {self.me}: {self.intro.partner} heard directly from {direct} and hears us: "
            f"leaving the relay for the direct path")

    def _probe(self, to: list[Endpoint], ack: bool | None = None) -> None:
        probe = Probe(self.intro.room, self.me, self.probes_sent, self.open if ack is None else ack)
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
        if self.relayed and source != self.target:
            if self.relayed_for_good:
                return True  # a direct datagram: its data still count, the forced relay stays
            if isinstance(msg, Data) or (isinstance(msg, Probe) and msg.ack):
                self._upgrade(source, now)
            elif isinstance(msg, Probe):
                self._probe([source], ack=True)  # we hear it directly: say so, directly
            return True
        if self.heard_at is None:
            self.heard_at, self.heard_from = now, source
            log(f"peer {self.me}: {'relayed path' if self.relayed else 'hole'} open, heard {self.intro.partner} "
                f"from {source}")
        if self.target != self.intro.partner_private or source == self.target:
            self.target = source  # the partner's private endpoint, once it answers, stays: the local path wins
        if isinstance(msg, Data) or (isinstance(msg, Probe) and msg.ack):
            self.partner_acked = True
        elif isinstance(msg, Probe) and now >= self.start_at:
            self._probe([source])
        return True

    @property
    def time_to_punch(self) -> float | None:
        return None if self.heard_at is None else max(0.0, self.heard_at - self.start_at)


class Exchange:
    """`count` numbered messages each way over the punched path, every one acknowledged.

    New messages go out every DATA_INTERVAL once the hole is open, WINDOW of them unacknowledged at
    most; one not acknowledged within the timer's timeout is sent again (bounded by MAX_TRIES), the
    timeout learnt from every acknowledged message's round trip: each Data says which of its sends it
    is and the Ack echoes that, so a message sent again times the send that arrived. (Against an ack
    without a matching echo, Karn's rule: only first sends time, until there is such a sample an ack
    after a resend may only shorten the timeout.) Under heavy loss most messages are sent again, and
    Karn alone left the timeout at its first guess, the resends a second apart. The first timeout is
    `first_rto`: the peer seeds it from its round trip to the broker, which crossed its own access
    link both ways. Every data datagram heard is acknowledged, a repeat too (its first ack may have
    been lost); repeats and reordering count once (by seq).

    A side whose exchange is done says Bye (seq count + 1), sent again until acknowledged like
    data; it leaves once its Bye is acknowledged and the partner's Bye has come: the partner's
    data were all acknowledged before it said Bye, so nobody leaves while the other still waits.
    """

    def __init__(self, hole: HolePunch, room: str, me: str, count: int, first_rto: float = INITIAL_RTO) -> None:
        self.hole, self.room, self.me, self.count = hole, room, me, count
        self.timer = RetransmitTimer(first_rto)
        self.sent = 0
        self.pending: dict[int, tuple[float, int]] = {}  # seq -> (last sent, sends)
        self.sent_at: dict[tuple[int, int], float] = {}  # (seq, send) -> when, until acknowledged: what an Ack times
        self.received: set[int] = set()
        self.retransmissions = 0
        self.acks = 0
        self.unanswered = 0  # our sends since the partner's last word
        self.next_new = 0.0
        self.bye_seq = count + 1
        self.bye: tuple[float, int] | None = None  # (last sent, sends) of our Bye, until acknowledged
        self.bye_acked = False
        self.partner_bye = False

    @property
    def done(self) -> bool:
        return self.sent >= self.count and not self.pending and len(self.received) >= self.count

    @property
    def needs_partner(self) -> bool:
        """Whether data are still to cross, either way. Only then may a quiet partner mean a path that
        moved (a rebinding): once done, what is left is goodbyes, which a partner already gone, or a
        lossy path, may never send; registering again then would only bother the broker."""
        return not self.done

    @property
    def finished(self) -> bool:
        """Done, and both sides know it: our Bye acknowledged, the partner's heard."""
        return self.done and self.partner_bye and (self.bye_acked or self.bye is not None and self.bye[1] >= MAX_TRIES)

    def partner_gone(self, quiet_s: float, silence_s: float) -> bool:
        """Whether a partner quiet for `quiet_s` is gone: past `silence_s`, and GONE_AFTER_UNANSWERED of
        our sends in a row unanswered (a lossy path loses round trips in runs; a dead partner answers
        none). Once we are done we send nothing, but the partner may still be sending again what we
        acknowledged (our acks lost): it is gone once quiet for as many of its sends again."""
        if quiet_s <= silence_s:
            return False
        if self.done:
            return quiet_s > GONE_AFTER_UNANSWERED * self.timer.backoff_cap()
        return self.unanswered >= GONE_AFTER_UNANSWERED

    @property
    def gave_up(self) -> bool:
        return any(tries >= MAX_TRIES for _, tries in self.pending.values())

    def _send(self, seq: int, now: float, tries: int) -> None:
        self.hole.send(Data(self.room, self.me, seq, f"hello #{seq} from {self.me}", send=tries))
        self.pending[seq] = (now, tries)
        self.sent_at[(seq, tries)] = now
        self.unanswered += 1

    def _due(self, now: float, last: float, tries: int) -> tuple[bool, float | None]:
        """For something sent `tries` times (0: not yet), last at `last`, unacknowledged: whether to send
        it now, and when it is due next (None: it has had all its tries)."""
        if tries >= MAX_TRIES:
            return False, None
        due = last + self.timer.backoff(tries) if tries else now
        if now < due:
            return False, due
        return True, now + self.timer.backoff(tries + 1)

    def tick(self, now: float) -> float | None:
        """Send what is due; when to be woken next (None: nothing more to send)."""
        if not self.hole.open:
            return None
        wake = []
        if self.sent < self.count and len(self.pending) < WINDOW:
            if now >= self.next_new:
                self.sent += 1
                self._send(self.sent, now, 1)
                self.next_new = now + DATA_INTERVAL
            wake.append(self.next_new if self.sent < self.count else None)
        for seq, (last, tries) in list(self.pending.items()):
            again, due = self._due(now, last, tries)
            if again:
                self.retransmissions += 1
                self._send(seq, now, tries + 1)
            wake.append(due)
        if self.done and not self.bye_acked:
            last, tries = self.bye or (now, 0)
            again, due = self._due(now, last, tries)
            if again:
                self.hole.send(Bye(self.room, self.me, self.bye_seq))
                self.bye = (now, tries + 1)
                self.unanswered += 1
            wake.append(due)
        wake = [w for w in wake if w is not None]
        return min(wake) if wake else None

    def rerouted(self, first_rto: float) -> None:
        """The path changed (to the relay, or back from it): its round trip is another, and what is
        unacknowledged goes again as soon as the new path opens."""
        self.timer = RetransmitTimer(first_rto)
        self.pending = {seq: (0.0, tries) for seq, (_, tries) in self.pending.items()}
        if self.bye is not None and not self.bye_acked:
            self.bye = (0.0, self.bye[1])

    def on_message(self, msg: Message, now: float) -> None:
        """A genuine datagram of the partner's (HolePunch.on_datagram said so)."""
        self.unanswered = 0
        if isinstance(msg, Data):
            self.received.add(msg.seq)
            self.hole.send(Ack(self.room, self.me, msg.seq, send=msg.send))
        elif isinstance(msg, Bye):
            self.partner_bye = True
            self.hole.send(Ack(self.room, self.me, msg.seq))
        elif isinstance(msg, Ack) and msg.seq == self.bye_seq:
            self.bye_acked = True
        elif isinstance(msg, Ack) and msg.seq in self.pending:
            _, tries = self.pending.pop(msg.seq)
            self.acks += 1
            sends = [self.sent_at.pop((msg.seq, send)) for send in range(1, tries + 1)]
            if 1 <= msg.send <= tries:  # the send that arrived: an exact round trip
                self.timer.sample(now - sends[msg.send - 1])
            else:  # an echo of no send of ours (an older peer's ack): timed from the first, Karn's way
                self.timer.sample(now - sends[0], exact=tries == 1)


def room_keys(secret: str | None) -> RoomKeys:
    """The room's keys from --secret, else NATLAB_ROOM_SECRET; CredentialError when neither is right."""
    return RoomKeys.from_secret(parse_secret(secret or os.environ.get(SECRET_ENV)))


SECRET_FIELDS = {"secret": "secret", "turn_password": "turn_password"}  # stdin's JSON key -> the option


def secrets_from_stdin(args: argparse.Namespace) -> None:
    """--secrets-stdin: the secrets as one JSON object on standard input ({"secret": ..., "turn_password":
    ...}), how the lab hands them over: a command line is visible to every process of the node (ps)."""
    with open(0, closefd=False) as stdin:  # fd 0 itself: a forked interpreter's sys.stdin may be another's
        text = stdin.read()
    try:
        given = json.loads(text or "{}")
    except ValueError as exc:
        raise CredentialError(f"--secrets-stdin: standard input is not one JSON object ({exc})") from None
    if not isinstance(given, dict):
        raise CredentialError("--secrets-stdin: standard input is not one JSON object")
    for key, option in SECRET_FIELDS.items():
        if given.get(key) and not getattr(args, option, None):
            setattr(args, option, given[key])


def gather_relayed(chan: Channel, args: argparse.Namespace, result: PunchResult) -> Endpoint | None:
    """A TURN allocation on the relay, before registering: its relayed address, or None (the reason in
    the result). Only with --relay auto or force and a --turn server."""
    if args.relay == "off" or not args.turn:
        return None
    relay = RelayedPath(Endpoint.parse(args.turn), args.turn_user or "", args.turn_password or
                        os.environ.get(TURN_PASSWORD_ENV, ""))
    try:
        relayed = relay.open(ALLOCATE_TIMEOUT_S)
    except RelayError as exc:
        relay.close()
        result.relay_error = str(exc)
        log(f"peer {args.id}: no relayed candidate: {exc}")
        return None
    chan.relay = relay
    result.relayed = str(relayed)
    log(f"peer {args.id}: relayed candidate {relayed} on {args.turn} ({1000 * (relay.allocate_s or 0):.0f} ms)")
    return relayed


def punch(args: argparse.Namespace) -> PunchResult:
    broker = Endpoint.parse(args.broker)
    result = PunchResult(peer=args.id, room=args.room, punch_delay_s=args.punch_delay, relay_mode=args.relay)
    keys = room_keys(args.secret)
    chan = Channel((local_ip_towards(broker), args.port))
    result.private = str(chan.local)
    start = time.monotonic()
    deadline = start + args.timeout
    counts: dict = {}
    relayed = gather_relayed(chan, args, result)
    if args.relay == "force" and relayed is None:
        result.error = f"relay forced but no relayed candidate: {result.relay_error or 'no --turn server'}"
        chan.close()
        return result
    guess = None
    if args.predict == "auto":  # after the TURN allocation: the next flows of this socket are the partner's
        guess, result.prediction = predicted_ports(chan, broker)
        log(f"peer {args.id}: port prediction: {result.prediction['why']}")
    txn = new_transaction()
    try:
        intro = rendezvous(chan, broker, args.room, args.id, keys, deadline, counts, relayed, txn, guess or None)
    except TimeoutError as exc:
        result.error = str(exc)
        result.registers_sent = counts.get("registers", 0)
        chan.close()
        return result
    introduced = time.monotonic()
    result.registers_sent = counts.get("registers", 0)
    result.time_to_intro_s = round(introduced - start, 4)
    result.public, result.partner, result.partner_public = str(intro.you), intro.partner, str(intro.partner_endpoint)
    result.partner_private = str(intro.partner_private)
    result.partner_relayed = str(intro.partner_relay) if intro.partner_relay else None
    result.partner_predicted = len(intro.partner_predicted)
    log(f"peer {args.id}: introduced to {intro.partner} at {intro.partner_endpoint} (private {intro.partner_private}"
        f"{f', relayed {intro.partner_relay}' if intro.partner_relay else ''}); I am {intro.you}")
    # From here on the broker is addressed again only if the partner goes quiet (Reintroduction).
    hole = HolePunch(chan, intro, args.id, introduced + args.punch_delay, keys, candidates=args.candidates)
    can_relay = chan.relay is not None and intro.partner_relay is not None
    if can_relay:
        chan.relayed_peers.add(intro.partner_relay)  # type: ignore[arg-type]
    if args.relay == "force":
        if not can_relay:
            result.error = "relay forced but the partner has no relayed candidate"
            chan.close()
            return result
        hole.relay_over(hole.start_at, for_good=True)
    broker_rtt = counts.get("broker_rtt")
    first_rto = max(INITIAL_RTO, FIRST_RTO_PER_BROKER_RTT * broker_rtt) if broker_rtt else INITIAL_RTO
    exchange = Exchange(hole, args.room, args.id, args.messages, min(MAX_RTO, first_rto))
    # The punch window: how long to probe before deciding no direct path opens. It scales with the
    # round trip (the broker's crossed this peer's own access link both ways).
    window = max(PUNCH_WINDOW_S, PUNCH_WINDOW_PER_BROKER_RTT * broker_rtt if broker_rtt else 0.0)
    result.punch_window_s = round(window, 3)
    closes_at = hole.start_at + window
    last_heard = introduced
    again = Reintroduction(chan, broker, args.room, args.id, keys, txn, relayed)
    first_hole = hole
    while time.monotonic() < deadline and not exchange.finished and not exchange.gave_up:
        now = time.monotonic()
        silence = max(PARTNER_SILENCE_S, PARTNER_SILENCE_PER_RTO * exchange.timer.rto)
        quiet_since = max(last_heard, hole.heard_at or 0)  # the last word of the partner, on this hole
        if hole.open and exchange.partner_gone(now - quiet_since, silence):
            result.partner_silent_s = round(now - quiet_since, 3)
            log(f"peer {args.id}: nothing from {intro.partner} for {now - quiet_since:.1f}s: it is gone")
            break
        if now >= closes_at and can_relay and not hole.relayed and not hole.confirmed:
            # No direct path both ways within the window: the relayed one, with a window of its own.
            log(f"peer {args.id}: no direct path within {window:.1f}s, falling back to the relay")
            result.fell_back_after_s = round(now - introduced, 4)
            hole.relay_over(now)
            exchange.rerouted(first_rto)
            closes_at = now + window
        elif not hole.open and now >= closes_at:
            break
        rebinding = hole.open and not hole.relayed and exchange.needs_partner
        quiet_limit = max(REBIND_SILENCE_S, 2 * exchange.timer.rto)
        wake = [w for w in (deadline, hole.tick(now), exchange.tick(now),
                            again.tick(now, quiet_since, quiet_limit) if rebinding else None)
                if w is not None]
        got = chan.receive(min(wake))
        if got is None:
            continue
        was_relayed = hole.relayed
        if (news := again.news(got[0], got[1], hole.intro)) is not None and not hole.relayed:
            now = time.monotonic()
            log(f"peer {args.id}: introduced again: {news.partner} at {news.partner_endpoint}, I am {news.you} "
                f"(was {hole.intro.partner_endpoint}, {hole.intro.you}): punching anew")
            result.reintroductions.append({"after_s": round(now - introduced, 4), "you": str(news.you),
                                           "partner": str(news.partner_endpoint)})
            result.public, result.partner_public = str(news.you), str(news.partner_endpoint)
            hole = HolePunch(chan, news, args.id, now, keys, after=hole, candidates=args.candidates)
            exchange.hole = hole
            exchange.rerouted(first_rto)
            closes_at = now + window
        elif hole.on_datagram(got[0], got[1], time.monotonic()):
            last_heard = time.monotonic()
            if was_relayed and not hole.relayed:  # back from the relay: a new path, a new round trip
                result.upgraded_after_s = round((hole.upgraded_at or last_heard) - introduced, 4)
                exchange.rerouted(first_rto)
            exchange.on_message(got[0], last_heard)
    # Answer late probes and a repeated Bye until the partner has been quiet a while: our ack of
    # its Bye may have been lost.
    quiet = max(LINGER, 2 * exchange.timer.rto)
    linger_until = min(deadline, time.monotonic() + quiet)
    while (got := chan.receive(linger_until)) is not None:
        if hole.on_datagram(got[0], got[1], time.monotonic()):
            exchange.on_message(got[0], time.monotonic())
            linger_until = min(deadline, time.monotonic() + quiet)
    chan.close()
    samples = exchange.timer.samples
    result.probes_sent = hole.probes_sent
    result.registers_again = again.registers
    result.partner_heard_from = str(hole.heard_from) if hole.heard_from else None
    result.path = hole.path
    result.opened_by_prediction = hole.heard_from in hole.intro.partner_predicted
    local = hole.target == hole.intro.partner_private != hole.intro.partner_endpoint
    result.route = (None if hole.heard_from is None else "relayed" if hole.relayed else "local" if local
                    else "direct")
    result.rejected = hole.rejected
    # The punch's figures are the first hole's: a re-punch after a rebinding is in `reintroductions`.
    result.time_to_punch_s = None if first_hole.time_to_punch is None else round(first_hole.time_to_punch, 4)
    result.time_to_first_heard_s = None if first_hole.heard_at is None else round(first_hole.heard_at - introduced, 4)
    result.rtt_ms = median_ms(samples)
    result.messages_sent = exchange.sent
    result.messages_received = len(exchange.received)
    result.received_seqs = sorted(exchange.received)
    result.retransmissions = exchange.retransmissions
    result.acks_received = exchange.acks
    result.ok = hole.open and exchange.done
    if not result.ok and result.partner_silent_s is not None:
        result.error = (f"the partner went silent: nothing heard from it for {result.partner_silent_s:.1f}s, "
                        f"{len(exchange.received)}/{args.messages} of its messages received, "
                        f"{exchange.acks}/{args.messages} of ours acknowledged")
    elif not result.ok:
        result.error = (f"no packet from the partner within the punch window ({window:.1f}s)"
                        f"{' on the relayed path too' if hole.relayed and args.relay == 'auto' else ''}"
                        if not hole.open else
                        f"{len(exchange.pending)} messages unacknowledged after {MAX_TRIES} sends" if exchange.gave_up
                        else "exchange incomplete before timeout")
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


def pid_file(peer: str) -> Path:
    """Where the node's punching peer `peer` keeps its pid."""
    return node_file(f"peer-{peer}.pid")


def keep_pid(peer: str) -> None:
    """Write the pid file, if this node has a place for it (a peer run by hand may have none)."""
    try:
        pid_file(peer).write_text(f"{os.getpid()}\n")
    except OSError:
        pass


def kill(peer: str) -> dict:
    """SIGKILL the node's punching peer `peer`, by its pid file: no goodbye, its socket closed by the kernel."""
    path = pid_file(peer)
    try:
        pid = int(path.read_text())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError) as exc:
        return {"ok": False, "error": f"no punching peer {peer} to kill ({path}: {exc})"}
    path.unlink(missing_ok=True)
    return {"ok": True, "killed": pid}


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
    p.add_argument("--relay", choices=RELAY_MODES, default="auto",
                   help="auto: punch, fall back to the relay; off: never relay; force: relayed only")
    p.add_argument("--candidates", choices=CANDIDATE_MODES, default="all",
                   help="the partner's endpoints to probe: all (public and private) or public only")
    p.add_argument("--predict", choices=PREDICT_MODES, default="auto",
                   help="auto: read two mappings of the NAT first and announce the ports it will likely give "
                   "the next flows (a NAT mapping per destination, in order); off: announce none")
    p.add_argument("--turn", help="the TURN server IP:PORT (without it the peer never relays)")
    p.add_argument("--turn-user", help="TURN username (time-limited: relay.credentials mints it)")
    p.add_argument("--turn-password", help=f"TURN password (default: ${TURN_PASSWORD_ENV})")
    p.add_argument("--secrets-stdin", action="store_true",
                   help="read the room secret and the TURN password from standard input, one JSON object "
                   '{"secret": ..., "turn_password": ...}: unlike --secret, not visible to ps (the lab does so)')
    r = sub.add_parser("reach", help="ping endpoints; print one JSON line saying, per target, whether it answered")
    r.add_argument("--to", required=True, action="append", help="IP:PORT (repeat for several, each with its --tag)")
    r.add_argument("--tag", required=True, action="append", help="names the experiment in the captures")
    r.add_argument("--attempts", type=int, default=3)
    r.add_argument("--wait", type=float, default=0.5, help="seconds to wait for each answer")
    k = sub.add_parser("kill", help="SIGKILL this node's punching peer (the peer-killed fault); print a JSON result")
    k.add_argument("--id", required=True, help="the peer's name in its room")
    args = parser.parse_args(argv)
    if args.command == "kill":
        outcome = kill(args.id)
        print(json.dumps(outcome), flush=True)
        return 0 if outcome["ok"] else 1
    if args.command == "punch":
        try:
            if args.secrets_stdin:
                secrets_from_stdin(args)
            keep_pid(args.id)
            result = punch(args)
        except CredentialError as exc:
            parser.error(str(exc))
        finally:
            pid_file(args.id).unlink(missing_ok=True)
        print(json.dumps(asdict(result)), flush=True)
        return 0 if result.ok else 1
    if len(args.to) != len(args.tag):
        parser.error("give one --tag for each --to")
    outcomes = reach([(Endpoint.parse(to), tag) for to, tag in zip(args.to, args.tag)], args.attempts, args.wait)
    print(json.dumps({"targets": outcomes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
