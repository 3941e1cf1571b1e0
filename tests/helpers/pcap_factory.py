"""Build the pcaps of a punch-test run with scapy, packet by packet, for the analysis tests.

A good run is written the way the real lab captures it: each datagram appears on every vantage
point it crosses, with the addresses it has there (private on a LAN, translated on the WAN).
The routers translate each peer's port to another public port, so a test can tell a translation
the analysis reconstructed from one it merely assumed. Faults are switches that change what the
captures hold, so each check can be shown to fail. Besides the pcaps, the builder keeps what it
put on the wire (BuiltRun): every datagram with its sender and where it ended, and each
translation the routers applied.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from lab.analysis.run import RunView
from lab.experiment.punch_test import PunchTestConfig
from lab.run_format import CAPTURE_STATS, TAG_NO_BYPASS, TAG_UNSOLICITED, tag
from lab.topology import CARRIER_PRESET, STANDARD, TURN_PORT, Pair, Topology, build_topology
from nat.behaviour import parse_nat, port_block
from tests.helpers.signed import data, intro, keys, probe, register, waiting
from wire.capture_marker import END, START, marker_frame
from wire.protocol import Endpoint, Error, Message, Ping, encode
from wire.stun import ALLOCATE, ERROR, REQUEST, SUCCESS

MESSAGES = 5
LATE_PEER = "b"
RUN_ID = "built"
PRIVATE_PORT = 41000  # + the pair's index
PUBLIC_PORT = 52000  # + the pair's index: what the routers translate each peer's port to
MID_PORT = 47000  # + the pair's index: what a home router behind a carrier translates it to (cgnat)
TURN_OFFSET = 500  # each peer's TURN socket: its ports this far on, so another mapping
MARKER_MAC = bytes.fromhex("02000000beef")  # the capture markers' (their own interface's, in a real run)


@dataclass(frozen=True)
class Faults:
    via_broker: bool = False  # data relayed through the broker instead of peer to peer
    early_probes_in: bool = False  # a's probes reach b's LAN before b punched
    nat_b: str = "port-restricted"  # router-b's NAT setting, as the run's topology records it
    leak: bool = False  # router-a lets one datagram out with its private source address
    one_way: bool = False  # b's messages never make it to a
    firewall_off: bool = False  # the outsider's packets reach router-b's LAN
    bypass: bool = False  # with forwarding off, peer-a still reaches the broker
    leak_in_payload: bool = False  # a's data names its private address in the text
    attacker: bool = False  # the outsider tries to join, replays a register, spoofs b towards a
    nat_a: str = "port-restricted"
    relayed: bool = False  # no direct probe gets through; every pair's data go through the relay (TURN channels)
    turn_refused: bool = False  # the relay refuses a's credentials (401 to its authenticated Allocate)
    # Peers on one LAN (shape same-lan): they meet through their router's hairpin, from its public address,
    # instead of locally, private address to private address.
    hairpinned: bool = False
    local_out: bool = False  # a same-lan pair's local data also show on the router's WAN (they left the LAN)
    nat_carrier: str = CARRIER_PRESET  # the carrier's NAT setting (shape cgnat), as the topology records it


@dataclass(frozen=True)
class Sent:
    """One datagram as the builder put it on the wire."""

    msg: Message
    src: str  # the node that sent it
    dst: str  # the node where it ended: its receiver, or the router that dropped it
    dropped: bool
    frames: int  # how many vantage points captured it


@dataclass
class BuiltRun:
    topology: Topology
    private: dict[str, Endpoint]  # each peer's socket, by pair label
    public: dict[str, Endpoint]  # what its router translates that socket to
    sent: list[Sent] = field(default_factory=list)


class RunBuilder:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.frames: dict[str, list] = {RunView.vantage(n.name, i.side): [] for n, i in topology.captures}
        self.clock = 1_700_000_000.0
        self.sent: list[Sent] = []
        # A captured peer (same-lan) sees everything of its own that its router's LAN sees.
        self.own_capture = {str(p.private_ip): (RunView.vantage(p.peer.name, "lan"), RunView.vantage(p.router.name, "lan"))
                            for p in topology.pairs if p.peer.captured and p.router}

    def send(self, vantages: dict[str, tuple[Endpoint, Endpoint]], msg: Message | None, src: str, dst: str,
             dropped: bool = False, payload: bytes | None = None, tcp_seq: int | None = None) -> None:
        """One datagram from node `src`, seen at each vantage point with that vantage's (src, dst); its
        payload is the message's encoding unless given (TURN framing, STUN). With `tcp_seq`, a TCP
        segment (PSH/ACK) with that sequence number instead, as a user's program may send."""
        self.clock += 0.001
        payload = encode(msg) if payload is None else payload
        for ip, (own, router_lan) in self.own_capture.items():
            if router_lan in vantages and ip in (vantages[router_lan][0].ip, vantages[router_lan][1].ip):
                vantages = {**vantages, own: vantages[router_lan]}
        for vantage, (s, d) in vantages.items():
            l4 = (UDP(sport=s.port, dport=d.port) if tcp_seq is None
                  else TCP(sport=s.port, dport=d.port, seq=tcp_seq, flags="PA"))
            frame = Ether() / IP(src=s.ip, dst=d.ip) / l4 / payload
            frame.time = self.clock
            self.frames[vantage].append(frame)
            self.clock += 0.0001
        self.sent.append(Sent(msg, src, dst, dropped, len(vantages)))

    def write(self, run_dir: Path, drops: dict[str, int] | None = None,
              unmarked: dict[str, str] | None = None) -> None:
        """The pcaps, each between its capture's start and end markers, and the agents' account of them
        (captures.json), as node.capture_agent writes them; `drops` (vantage -> frames the kernel
        dropped) and `unmarked` (vantage -> the marker missing: start or end) spoil some."""
        run_dir.mkdir(parents=True, exist_ok=True)
        drops, unmarked = drops or {}, unmarked or {}
        start, end = 1_700_000_000.0 - 0.5, self.clock + 0.5
        account = {}
        for vantage, frames in self.frames.items():
            marks = [(kind, t) for kind, t in ((START, start), (END, end)) if unmarked.get(vantage) != kind]
            marked = [Ether(marker_frame(kind, vantage, MARKER_MAC)) for kind, _ in marks]
            for frame, (_, t) in zip(marked, marks):
                frame.time = t
            written = marked[:1] + frames + marked[1:] if marks and marks[0][0] == START else frames + marked
            wrpcap(str(run_dir / f"{vantage}.pcap"), written, linktype=1)
            account[vantage] = {"written": len(written), "kernel_packets": len(written) + drops.get(vantage, 0),
                                "kernel_drops": drops.get(vantage, 0), "markers": [k for k, _ in marks],
                                "marker_errors": [], "agent": "built", "started": start, "stopped": end}
        (run_dir / CAPTURE_STATS).write_text(json.dumps({"vantages": account, "errors": {}}) + "\n")


def write_record(run_dir: Path, topology: Topology, messages: int = MESSAGES, relay: str = "off",
                 fault: dict | None = None, candidates: str = "all") -> None:
    """A run.json as the scenario writes it, with what the analysis reads from it (and a fault's record)."""
    config = PunchTestConfig(messages=messages, late_peer=LATE_PEER, relay=relay, candidates=candidates)
    record = {"run_id": RUN_ID, "config": asdict(config), "topology": topology.to_json(), "fault": fault}
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")


def build_run(run_dir: Path, faults: Faults = Faults(), messages: int = MESSAGES, pairs: int = 1,
              faulty_pair: int = 1, drops: dict[str, int] | None = None,
              unmarked: dict[str, str] | None = None, shape: str = STANDARD) -> BuiltRun:
    """A run of `pairs` punch pairs of `shape`; the faults hit pair `faulty_pair` only; `drops` and `unmarked`
    spoil captures (RunBuilder.write)."""
    topo = build_topology(pairs=pairs, nat_a=faults.nat_a, nat_b=faults.nat_b, shape=shape, nat_carrier=faults.nat_carrier)
    b = RunBuilder(topo)
    broker = Endpoint(str(topo.broker.address), topo.broker_port)
    priv = {p.label: Endpoint(str(p.private_ip), PRIVATE_PORT + i) for i, p in enumerate(topo.pairs)}
    # A public peer's socket is its public endpoint: nothing translates it. A ports=block edge NAT (a
    # carrier's) translates into the block of the address behind it.
    def public_port(p: Pair, i: int) -> int:
        edge = p.edge
        if edge.nat and parse_nat(edge.nat).allocation == "block":
            inside = p.router.interface("wan").address if p.carrier else p.private_ip
            return port_block(topo.network(edge.interface("lan").network).subnet, inside)[0] + i
        return PUBLIC_PORT + i

    pub = {p.label: Endpoint(str(p.public_ip), public_port(p, i)) if p.router else priv[p.label]
           for i, p in enumerate(topo.pairs)}
    BROKER, OUTSIDER = topo.broker.name, topo.outsider.name  # noqa: N806

    # Behind a carrier (cgnat), each socket has a third endpoint: its home router's translation, on the
    # carrier's segment, which the carrier translates on to the public one.
    mid = {p.label: Endpoint(str(p.router.interface("wan").address), MID_PORT + i) for i, p in enumerate(topo.pairs)
           if p.carrier}

    def lan(p: Pair) -> str:
        return RunView.vantage(*RunView.lan_vantage(p))

    def wan(p: Pair) -> str:
        return RunView.vantage(*RunView.wan_vantage(p))

    def hops(p: Pair, offset: int = 0) -> list[tuple[str, Endpoint]]:
        """Where a datagram of p's socket (its main one, or the one `offset` ports on) is seen leaving, from
        its LAN outwards, with its source there: private, [between the NATs,] public."""
        def moved(ep: Endpoint) -> Endpoint:
            return Endpoint(ep.ip, ep.port + offset)

        between = [(RunView.vantage(p.router.name, "wan"), moved(mid[p.label])),
                   (RunView.vantage(p.carrier.name, "lan"), moved(mid[p.label]))] if p.carrier else []
        if p.router is None:  # a public peer: its own capture, nothing between it and the internet
            return [(lan(p), moved(priv[p.label]))]
        return [(lan(p), moved(priv[p.label])), *between, (wan(p), moved(pub[p.label]))]

    def on_segment(node, p: Pair):
        """The interface of a WAN host (broker, outsider) on the segment of p's edge router."""
        return next(i for i in node.interfaces if i.network == p.segment)

    def broker_wan(p: Pair) -> str:
        return RunView.vantage(BROKER, on_segment(topo.broker, p).side)

    # Each peer's TURN socket (another port, so another mapping), and the relay on its router's segment.
    turn_pub = {label: Endpoint(ep.ip, ep.port + TURN_OFFSET) for label, ep in pub.items()}

    def relay_at(p: Pair) -> tuple[str, Endpoint]:
        iface = on_segment(topo.relay, p)
        return RunView.vantage(topo.relay.name, iface.side), Endpoint(str(iface.address), TURN_PORT)

    def to_relay(p: Pair, payload: bytes, msg: Message | None = None) -> None:
        vantage, relay = relay_at(p)
        b.send({**{v: (ep, relay) for v, ep in hops(p, TURN_OFFSET)}, vantage: (turn_pub[p.label], relay)},
               msg, p.peer.name, topo.relay.name, payload=payload)

    def from_relay(p: Pair, payload: bytes, msg: Message | None = None) -> None:
        vantage, relay = relay_at(p)
        b.send({vantage: (relay, turn_pub[p.label]), **{v: (relay, ep) for v, ep in reversed(hops(p, TURN_OFFSET))}},
               msg, topo.relay.name, p.peer.name, payload=payload)

    def allocate(p: Pair, refused: bool) -> None:
        """What an allocation looks like at the relay: refused without credentials, then with them."""
        first = stun_message(ALLOCATE, REQUEST)
        to_relay(p, bytes(first))
        from_relay(p, bytes(stun_message(ALLOCATE, ERROR, first.transaction_id, {"ERROR-CODE": (401, "Unauthorized")})))
        second = stun_message(ALLOCATE, REQUEST, attributes={"USERNAME": f"1:{p.label}"})
        to_relay(p, bytes(second))
        answer = (stun_message(ALLOCATE, ERROR, second.transaction_id, {"ERROR-CODE": (401, "Unauthorized")})
                  if refused else stun_message(ALLOCATE, SUCCESS, second.transaction_id))
        from_relay(p, bytes(answer))

    def relayed(src: Pair, dst: Pair, msg: Message) -> None:
        """One message through the relay: into src's channel, out of dst's."""
        payload = encode(msg)
        framed = struct.pack("!HH", 0x4000, len(payload)) + payload
        to_relay(src, framed, msg)
        from_relay(dst, framed, msg)

    def faulty(p: Pair, side: str) -> bool:
        return p.side == side and p.number == faulty_pair

    def peer_to_broker(p: Pair, msg: Message) -> None:
        b.send({**{v: (ep, broker) for v, ep in hops(p)}, broker_wan(p): (pub[p.label], broker)},
               msg, p.peer.name, BROKER)

    def broker_to_peer(p: Pair, msg: Message) -> None:
        b.send({broker_wan(p): (broker, pub[p.label]), **{v: (broker, ep) for v, ep in reversed(hops(p))}},
               msg, BROKER, p.peer.name)

    def own(p: Pair) -> str:
        return RunView.vantage(p.peer.name, "lan")

    def peer_to_peer(src: Pair, dst: Pair, msg: Message, delivered: bool = True) -> None:
        delivered = delivered or dst.router is None  # no NAT drops what reaches a public peer
        if topo.same_lan(src):  # one LAN: locally, or through the router's hairpin (never its WAN)
            if faults.hairpinned:  # to the partner's public endpoint, and back into the LAN from the router
                b.send({own(src): (priv[src.label], pub[dst.label]), lan(src): (priv[src.label], pub[dst.label])},
                       msg, src.peer.name, src.router.name)
                seen = {lan(dst): (pub[src.label], priv[dst.label]), own(dst): (pub[src.label], priv[dst.label])}
            else:
                seen = {own(src): (priv[src.label], priv[dst.label]), own(dst): (priv[src.label], priv[dst.label])}
                if faults.local_out and src.number == faulty_pair:
                    seen[wan(src)] = (priv[src.label], priv[dst.label])
            b.send(seen, msg, src.peer.name, dst.peer.name)
            return
        if topo.shares_edge(src) and src.carrier:  # behind one carrier: it turns the datagram back (hairpinning), or drops it
            hairpins = parse_nat(src.carrier.nat).hairpinning
            b.send({v: (ep, pub[dst.label]) for v, ep in hops(src)[:-1]}, msg, src.peer.name, src.carrier.name,
                   dropped=not hairpins)
            if not hairpins:
                return
            back = {v: (pub[src.label], ep) for v, ep in reversed(hops(dst)[1:-1])}
            if delivered:
                back[lan(dst)] = (pub[src.label], priv[dst.label])
            b.send(back, msg, src.carrier.name, dst.peer.name if delivered else dst.router.name,
                   dropped=not delivered)
            return
        # Out through every NAT of the sender's, across the internet, in through every NAT of the receiver's (an
        # undelivered one stops at the receiver's edge).
        seen = {v: (ep, pub[dst.label]) for v, ep in hops(src)}
        seen[wan(dst)] = (pub[src.label], pub[dst.label])
        if delivered:
            seen.update({v: (pub[src.label], ep) for v, ep in reversed(hops(dst)[:-1])})
        b.send(seen, msg, src.peer.name, dst.peer.name if delivered else dst.edge_name, dropped=not delivered)

    # Control: forwarding off, pings stay on the LAN (a public peer has no router to turn off).
    for p in (p for p in topo.pairs if p.router):
        for seq in range(3):
            seen = {lan(p): (Endpoint(str(p.private_ip), 39000), broker)}
            through = faults.bypass and faulty(p, "a")
            if through:
                public = Endpoint(str(p.public_ip), 39000)
                seen.update({wan(p): (public, broker), broker_wan(p): (public, broker)})
            b.send(seen, Ping(tag(TAG_NO_BYPASS, p), seq), p.peer.name, BROKER if through else p.router.name,
                   dropped=not through)
    # Control: the outsider aims at the private addresses.
    for p in topo.pairs:
        outsider = Endpoint(str(on_segment(topo.outsider, p).address), 50000)
        for seq in range(2):
            seen = {wan(p): (outsider, Endpoint(str(p.private_ip), 40000))}
            through = (faults.firewall_off and faulty(p, "b")) or p.router is None  # nothing filters a public peer
            if through:
                seen[lan(p)] = (outsider, Endpoint(str(p.private_ip), 40000))
            b.send(seen, Ping(tag(TAG_UNSOLICITED, p), seq), OUTSIDER, p.peer.name if through else p.router.name,
                   dropped=not through)
    for pp in topo.punch_pairs:
        a_pair, b_pair, room = pp.a, pp.b, f"r{pp.number}"
        la, lb = a_pair.label, b_pair.label
        faulty_here = pp.number == faulty_pair
        # Rendezvous: a waits, b completes the room, both are introduced.
        reg_a = register(room, la, "t1", priv[la])
        peer_to_broker(a_pair, reg_a)
        broker_to_peer(a_pair, waiting(room, "t1", pub[la]))
        peer_to_broker(b_pair, register(room, lb, "t2", priv[lb]))
        broker_to_peer(b_pair, intro(room, "t2", pub[lb], la, pub[la], priv[la]))
        broker_to_peer(a_pair, intro(room, "t1", pub[la], lb, pub[lb], priv[lb]))
        if faults.attacker and faulty_here:
            # Without the secret: refused, with an error no longer than the register.
            attempt = Endpoint(str(on_segment(topo.outsider, a_pair).address), 50001)
            for peer in (la, lb, "c"):
                b.send({broker_wan(a_pair): (attempt, broker)},
                       register(room, peer, "evil", attempt, secret_keys=keys("x")), OUTSIDER, BROKER)
                b.send({broker_wan(a_pair): (broker, attempt)}, Error("unauthorized", "register MAC does not verify"),
                       BROKER, OUTSIDER)
            b.send({broker_wan(a_pair): (attempt, broker)}, reg_a, OUTSIDER, BROKER)  # a replay: no answer at all
        # a probes first: b's NAT drops these (b has not punched yet).
        for seq in range(4):
            peer_to_peer(a_pair, b_pair, probe(room, la, seq, False), delivered=faults.early_probes_in and faulty_here)
        if faults.relayed:
            # No direct path: b's probes stop at a's NAT too; then both go through the relay.
            peer_to_peer(b_pair, a_pair, probe(room, lb, 0, False), delivered=False)
            for side in (a_pair, b_pair):
                allocate(side, faults.turn_refused and side is a_pair and faulty_here)
            if faults.turn_refused and faulty_here:
                continue  # a has no relayed candidate: nothing more happens between them
            relayed(a_pair, b_pair, probe(room, la, 5, False))
            relayed(b_pair, a_pair, probe(room, lb, 1, True))
            for seq in range(1, messages + 1):
                relayed(a_pair, b_pair, data(room, la, seq, f"hello #{seq} from {la}"))
                relayed(b_pair, a_pair, data(room, lb, seq, f"hello #{seq} from {lb}"))
            continue
        peer_to_peer(b_pair, a_pair, probe(room, lb, 0, False))
        peer_to_peer(a_pair, b_pair, probe(room, la, 4, True))
        if faults.attacker and faulty_here:
            # Spoofed as b's public endpoint, a's NAT lets them in: only the session proof stops them.
            other_session = "66" * 16
            for forged in (probe(room, lb, 99, True, other_session), data(room, lb, 1, "forged", other_session)):
                b.send({wan(a_pair): (pub[lb], pub[la]), lan(a_pair): (pub[lb], priv[la])}, forged, OUTSIDER,
                       a_pair.peer.name)
        for seq in range(1, messages + 1):
            peer_to_peer(a_pair, b_pair, data(room, la, seq, f"hello #{seq} from {la}"))
            if faults.via_broker and faulty_here:
                peer_to_broker(a_pair, data(room, la, seq, f"hello #{seq} from {la}"))
            if not (faults.one_way and faulty_here):
                peer_to_peer(b_pair, a_pair, data(room, lb, seq, f"hello #{seq} from {lb}"))
        if faults.leak and faulty_here:
            b.send({lan(a_pair): (priv[la], pub[lb]), wan(a_pair): (priv[la], pub[lb])}, data(room, la, 99, "raw"),
                   a_pair.peer.name, b_pair.edge_name)
        if faults.leak_in_payload and faulty_here:
            peer_to_peer(a_pair, b_pair, data(room, la, messages + 1, f"my LAN address is {priv[la].ip}"))
    b.write(run_dir, drops, unmarked)
    return BuiltRun(topo, priv, pub, b.sent)


def stun_message(method: int, kind: int, transaction_id: bytes | None = None, attributes: dict | None = None):
    """A STUN/TURN message (aioice's codec) of `method` and class `kind`."""
    from aioice import stun

    msg = stun.Message(message_method=stun.Method(method), message_class=stun.Class(kind),
                       **({"transaction_id": transaction_id} if transaction_id else {}))
    msg.attributes.update(attributes or {})
    return msg


def built_verdict(run_dir: Path, faults: Faults = Faults(), shape: str = STANDARD, relay: str = "off",
                  candidates: str = "all", pairs: int = 1):
    """A run of `shape` built (build_run) and judged from its pcaps: its topology and its verdict."""
    from lab.analysis.packets import load_run
    from lab.analysis.verdict import analyse

    topo = build_run(run_dir, faults, shape=shape, pairs=pairs).topology
    return topo, analyse(load_run(run_dir), topo, MESSAGES, LATE_PEER, "test", relay_mode=relay, candidates=candidates)


def failing_checks(verdict) -> dict[str, str]:
    """The checks of a verdict that did not pass: id -> detail."""
    return {c.id: c.detail for c in verdict.checks if not c.ok}
