"""The verdict of a run, decided from its pcaps alone.

Peer logs can lie or be wrong; packets seen by the capture points cannot. Each check below
reads only the packet records (lab.analysis.packets) and the topology snapshot of the run, and says what it
saw. The checks:
0. captures     every capture is complete (lab.analysis.capture_check, added by judge): else the
                checks that pass on absence (PASS_ON_ABSENCE) are inconclusive, not passed
1. rendezvous   the broker accepted both registrations, from the routers' public addresses only (a
                cgnat pair's: its carrier's)
2. skip-server  after the broker's last introduction, none of the peers' packets reach it
3. path         each pair took the path its NATs and the relay mode allow (lab.analysis.paths):
                direct: each router's WAN saw all N messages each way, between the two public
                addresses; relayed: the relay's capture saw them all each way, between each
                router's public address and the relay, and none went router to router; peers
                behind one public address (same-lan, cgnat): at each receiver's last capture,
                from the partner's private address (local) or hairpinned from the public one,
                none of it on the edge router's WAN
4. nat-real     private addresses (10.x, 100.64.x) on the LANs, never from a WAN (but in the fields
                that declare a private endpoint by design); the translation, LAN to WAN through every
                NAT of the pair (home, then carrier), matches what the broker reported
5a unsolicited  unsolicited packets reach a router's WAN and never its LAN
5b no-bypass    with its router's forwarding off, a peer reaches nothing beyond its LAN
6  links        (only in a run whose routers had a link condition) the delay each router's link
                was set to, seen between its LAN and WAN captures, each way
7  relay-share  (only in a run that could relay) the relay carried no data of a pair that punched
                (relay auto), or all of it (relay force)
8  fault        (only in a run with an injected fault) what the fault did and how the peers came
                through it (lab.analysis.fault_checks, which also says what it changes in check 3)
With several punch pairs every check is made for each pair on that pair's view of the run (its
routers' captures, and the broker's packets that concern it), and the verdict's line for a check
counts the pairs that passed and names those that failed.
A registration counts when the broker answered it (waiting or introduction): refused ones (no
room secret, a replay) are evidence of an attempt, not part of the rendezvous. The pcaps cannot
tell a datagram with a spoofed source from a genuine one; the session proof can, and the peers'
results count what they rejected.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from lab.analysis.link_delays import Crossings, crossings, peer_times
from lab.analysis.packets import Packet
from lab.analysis.paths import DIRECT, FAILED, LOCAL, RELAYED, PairPath, allocations, pair_path
from lab.analysis.run import LoadedRun, RunView, read_run
from lab.run_format import FAULT_PEER_KILLED, TAG_NO_BYPASS, TAG_UNSOLICITED, tag
from lab.topology import Pair, PunchPair, Topology
from nat.behaviour import DEFAULT_PRESET, parse_nat, port_block
from node.link import parse_link
from wire.protocol import Data, Intro, Message, Ping, Probe, Register, text_without_private

FAILURES_SHOWN = 5  # failing pairs named in a check's line; the evidence lists them all


@dataclass
class Check:
    id: str
    title: str
    ok: bool
    detail: str
    evidence: list[str] = field(default_factory=list)
    pairs: int = 1  # punch pairs checked
    failed_pairs: list[int] = field(default_factory=list)  # their numbers
    inconclusive: bool = False  # it would pass on absence, but a capture it reads is incomplete (check 0)

    @property
    def status(self) -> str:
        return "PASS" if self.ok else "INCONCLUSIVE" if self.inconclusive else "FAIL"


@dataclass
class Verdict:
    run_id: str
    checks: list[Check]
    paths: list[dict] = field(default_factory=list)  # per punch pair: its path, the expected one and why
    captures: dict[str, dict] = field(default_factory=dict)  # per vantage point: frames, kernel drops, complete

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, check_id: str) -> Check:
        """The check of that id ("0", "5a"...)."""
        return next(c for c in self.checks if c.id == check_id)

    def to_json(self) -> dict:
        return {"run_id": self.run_id, "ok": self.ok, "checks": [asdict(c) for c in self.checks],
                "paths": self.paths, "captures": self.captures}


def _ping_count(packets: list[Packet], ping_tag: str) -> int:
    return sum(1 for p in packets if isinstance(p.msg, Ping) and p.msg.tag == ping_tag)


def check_rendezvous(view: RunView) -> Check:
    registers, refused = view.registrations()
    sources = sorted({str(p.src_ep) for p in registers})
    problems = []
    for pair in view.pairs:
        mine = {p.src for p in registers if p.msg.peer == pair.label}
        if not mine:
            problems.append(f"no registration from peer {pair.label}")
        elif mine != {str(pair.public_ip)}:
            problems.append(f"peer {pair.label} registered from {sorted(mine)}, not only {pair.public_ip}")
    private = [s for s in sources if view.topology.is_private(s.rpartition(":")[0])]
    if private:
        problems.append(f"registrations from private addresses: {private}")
    intro_to = {str(p.dst_ep) for p in view.broker if isinstance(p.msg, Intro)}
    unintroduced = [s for s in sources if s not in intro_to]
    if unintroduced:
        problems.append(f"never introduced: {unintroduced}")
    detail = "; ".join(problems) or f"registrations from {', '.join(sources)}, each introduced; no private source"
    evidence = [f"{len(registers)} register datagrams accepted"]
    if refused:
        evidence.append(f"{len(refused)} refused, from {', '.join(sorted({str(p.src_ep) for p in refused}))}")
    return Check("1", "rendezvous via the broker", not problems, detail, evidence)


def check_skip_server(view: RunView) -> Check:
    intros = view.introductions()
    if not intros:
        return Check("2", "traffic after rendezvous skips the server", False, "the broker sent no introduction")
    last = max(p.time for p in intros)
    peers = {p.src_ep for p in view.registrations()[0]}
    late = [p for p in view.broker if p.time > last and (p.src_ep in peers or p.dst_ep in peers)]
    session = [p for p in view.broker if isinstance(p.msg, (Probe, Data))]
    # The data of peers behind one public address (same-lan, cgnat) never reach the edge router's WAN.
    inside = all(view.topology.shares_edge(pair) for pair in view.pairs)
    where = "their LANs" if inside else "the routers"
    direct = len({p.payload for pair in view.pairs for p in (view.at_peer(pair) if inside else view.wan(pair))
                  if isinstance(p.msg, Data) and p.time > last})
    problems = []
    if late:
        problems.append(f"{len(late)} packets of the peers at the broker after its last introduction")
    if session:
        problems.append(f"{len(session)} probe/data packets reached the broker")
    if not direct:
        problems.append(f"no data crossed {where} after the introduction (nothing to skip the server)")
    detail = "; ".join(problems) or (
        f"broker's last introduction, then 0 packets of the peers there while {direct} data messages crossed {where}"
    )
    return Check("2", "traffic after rendezvous skips the server", not problems, detail)


def check_path(view: RunView, pp: PunchPair, path: PairPath, messages: int,
               reports: dict[str, dict] | None = None) -> Check:
    """The pair's path (lab.analysis.paths) against the expected one, and complete on it."""
    problems = []
    why = _path_reason(view, pp, path, messages, reports or {})
    evidence = [f"{path.path}: {why}"]
    if path.path == FAILED:
        problems.append(f"{path.path}: {why}")
    else:
        if path.path != path.expected.path:
            problems.append(f"{path.path}, not {path.expected.path} as expected: {path.expected.reason}")
        direct = _hairpin_path if pp.shares_edge else _direct_path
        shown = {DIRECT: direct, LOCAL: _local_path}.get(path.path, _relayed_path)(view, pp, messages)
        problems += shown[0]
        evidence += shown[1]
    done = {DIRECT: f"turned back by {pp.a.edge.name}, from its public address, never on its WAN"
            if pp.shares_edge else "public address to public address, on both WANs",
            LOCAL: "private address to private address on their LAN, none through the router"}.get(
        path.path, "through the relay, none router to router")
    if any(line.startswith("port prediction:") for line in evidence):  # the technique that opened the path
        done += ", at a port one peer predicted (port prediction)"
    detail = "; ".join(problems) or f"{path.path}: {why}; all {messages} messages each way, {done}"
    return Check("3", "path: direct or relayed, as the NATs allow", not problems, detail, evidence)


def _path_reason(view: RunView, pp: PunchPair, path: PairPath, messages: int, reports: dict[str, dict]) -> str:
    """Why the pair took its path, in one line: the theory, and what the peers and the relay did."""
    parts = [path.expected.reason if path.path == path.expected.path or path.path == FAILED
             else f"expected {path.expected.path}"]
    fell = [r["fell_back_after_s"] for side in pp.sides if (r := reports.get(side.label))
            and r.get("fell_back_after_s") is not None]
    if path.path == RELAYED and fell:
        parts.append(f"no direct path within {min(fell):.1f}s, then the relay")
    if path.path == FAILED:
        if view.topology.relay is not None and path.expected.path == RELAYED:
            parts += [why for side in pp.sides if (why := allocations(view, side).explain(side.label))]
        missing = [f"{w.sender}->{w.receiver} {len(w.direct | w.relayed)}/{messages}" for w in path.ways]
        parts.append("messages delivered " + ", ".join(missing))
    return "; ".join(parts)


def _relayed_path(view: RunView, pp: PunchPair, messages: int) -> tuple[list[str], list[str]]:
    """All messages each way through the relay's capture: sender's public address to the relay, the
    relay to the receiver's; none router to router."""
    problems, evidence = [], []
    want = set(range(1, messages + 1))
    relay_ips = view.relay_ips
    at_relay = [p for p in view.relay if isinstance(p.msg, Data) and p.relayed]
    for sender, receiver in ((pp.a, pp.b), (pp.b, pp.a)):
        src, dst = str(sender.public_ip), str(receiver.public_ip)
        legs = {"in": {p.msg.seq for p in at_relay if p.msg.sender == sender.label and p.src == src
                       and p.dst in relay_ips},
                "out": {p.msg.seq for p in at_relay if p.msg.sender == sender.label and p.src in relay_ips
                        and p.dst == dst}}
        evidence.append(f"{sender.label}->{receiver.label} at the relay: {len(legs['in'] & want)}/{messages} from "
                        f"{src}, {len(legs['out'] & want)}/{messages} on to {dst}")
        for leg, seqs in legs.items():
            if not want <= seqs:
                problems.append(f"{sender.label}->{receiver.label} {'into' if leg == 'in' else 'out of'} the relay: "
                                f"{len(seqs & want)} of {messages} messages")
        around = {p.msg.seq for p in view.wan(receiver) if isinstance(p.msg, Data) and not p.relayed
                  and p.msg.sender == sender.label and p.src == src and p.dst == dst}
        if around:
            evidence.append(f"{sender.label}->{receiver.label}: {len(around)} messages also went router to router")
    return problems, evidence


def _direct_path(view: RunView, pp: PunchPair, messages: int) -> tuple[list[str], list[str]]:
    """All messages each way on both routers' WANs, public address to public address."""
    reported, predicted = view.reported_endpoints(), view.predicted_endpoints()
    problems, evidence = [], []
    want = set(range(1, messages + 1))
    for pair in pp.sides:
        other = view.partner(pair)
        src, dst = str(pair.public_ip), str(other.public_ip)
        for vantage, packets in ((view.vantage(*view.wan_vantage(side)), view.wan(side)) for side in (pair, other)):
            # The sender's data, from its router's public address to the partner's: whatever ports
            # the NATs chose (a symmetric NAT's differ from the ones the broker saw).
            flow = [
                p for p in packets
                if isinstance(p.msg, Data) and not p.relayed and p.msg.sender == pair.label and p.src == src
                and p.dst == dst
            ]
            seqs = {p.msg.seq for p in flow}
            endpoints = sorted({f"{p.src_ep}->{p.dst_ep}" for p in flow})
            as_reported = {f"{reported.get(pair.label)}->{reported.get(other.label)}"}
            note = "" if not endpoints or set(endpoints) == as_reported else " (not the endpoints the broker saw)"
            guessed = sorted({str(p.src_ep) for p in flow if p.src_ep in predicted.get(pair.label, set())})
            if guessed and vantage == view.vantage(*view.wan_vantage(pair)):
                ports = sorted(ep.port for ep in predicted[pair.label])
                evidence.append(f"port prediction: {pair.label} announced ports {ports[0]}-{ports[-1]}, its NAT "
                                f"mapped the flow to {other.label} at {', '.join(guessed)}, where {other.label} probed")
            again = len(flow) - len(seqs)  # a message sent again is still one message
            note += f" ({again} datagrams sent again)" if again else ""
            evidence.append(f"{pair.label}->{other.label} {', '.join(endpoints) or '-'} at {vantage}: "
                            f"{len(seqs)}/{messages}{note}")
            if not want <= seqs:
                problems.append(f"{pair.label}->{other.label} at {vantage}: "
                                f"{len(seqs & want)} of {messages} messages")
    return problems, evidence


def _local_path(view: RunView, pp: PunchPair, messages: int) -> tuple[list[str], list[str]]:
    """All messages each way at the receiver's own capture, private address to private address."""
    return _lan_path(view, pp, messages, hairpinned=False)


def _hairpin_path(view: RunView, pp: PunchPair, messages: int) -> tuple[list[str], list[str]]:
    """All messages each way at the receiver's own capture from the router's public address: the router
    turned them back into the LAN (hairpinning), each with its sender's public port."""
    return _lan_path(view, pp, messages, hairpinned=True)


def _lan_path(view: RunView, pp: PunchPair, messages: int, hairpinned: bool) -> tuple[list[str], list[str]]:
    """The messages of peers behind one public address at the last capture before each receiver, from the
    sender's private address (local: one LAN) or its public one (hairpinned by the router or carrier they
    share), and none of their data on that edge router's WAN: their path never reaches the internet."""
    problems, evidence = [], []
    want = set(range(1, messages + 1))
    for pair in pp.sides:
        other = view.partner(pair)
        src, dst = str(pair.public_ip if hairpinned else pair.private_ip), str(other.private_ip)
        seqs = {p.msg.seq for p in view.at_peer(other)
                if isinstance(p.msg, Data) and not p.relayed and p.msg.sender == pair.label and p.src == src
                and p.dst == dst}
        at = view.vantage(*view.peer_vantage(other))
        evidence.append(f"{pair.label}->{other.label} {src}->{dst} at {at}: {len(seqs & want)}/{messages}")
        if not want <= seqs:
            problems.append(f"{pair.label}->{other.label} at {at}: {len(seqs & want)} of {messages} messages")
    out = [p for p in view.wan(pp.a) if isinstance(p.msg, Data) and not p.relayed and p.msg.sender in view.labels]
    if out:
        problems.append(f"{len(out)} of the pair's data datagrams reached the internet at {pp.a.edge.name}-wan")
    return problems, evidence


def check_relay_share(pp: PunchPair, path: PairPath, relay_mode: str) -> Check:
    """The relay carries only what it must: with auto, nothing of a pair that punched; with force, everything."""
    problems = []
    direct = sum(len(w.direct) for w in path.ways)
    evidence = [f"{pp.name}: {'punched' if path.punched else 'no direct path both ways'}; "
                f"{path.at_relay} datagrams of data at the relay, {direct} messages arrived directly"]
    if relay_mode == "auto" and path.punched and path.at_relay:
        problems.append(f"{pp.name} punched, yet the relay carried {path.at_relay} of its datagrams of data")
    if relay_mode == "force" and direct:
        problems.append(f"{pp.name}: relay forced, yet {direct} messages arrived directly")
    detail = "; ".join(problems) or ("no data of a pair that punched went through the relay" if relay_mode == "auto"
                                     else "every message went through the relay, none directly")
    return Check("7", "the relay carries only what it must", not problems, detail, evidence)


def _session_of(p: Packet, label: str) -> bool:
    """Whether a datagram belongs to peer `label`'s session (its registration, probes and data)."""
    m = p.msg
    return (isinstance(m, Register) and m.peer == label) or (isinstance(m, (Probe, Data)) and m.sender == label)


def _translations(view: RunView, pair: Pair) -> set[tuple[str, ...]]:
    """(private, [between the NATs,] public, remote) endpoints of each session datagram the peer sent to the
    internet, matched by payload from its LAN through each router's WAN (two NATs behind a carrier)."""
    def leaving(packets: list[Packet], source: str) -> dict[bytes, str]:
        out: dict[bytes, str] = {}
        for p in packets:
            if p.src == source and not p.relayed and _session_of(p, pair.label):
                out.setdefault(p.payload, str(p.src_ep))
        return out

    public = {p.payload: str(p.dst_ep) for p in view.wan(pair)
              if p.src == str(pair.public_ip) and not p.relayed and _session_of(p, pair.label)}
    hops = [leaving(view.at(r.name, "wan"), str(r.interface("wan").address)) for r in pair.routers]
    return {(str(p.src_ep), *(hop[p.payload] for hop in hops), public[p.payload]) for p in view.lan(pair)
            if p.src == str(pair.private_ip) and p.payload in public and all(p.payload in hop for hop in hops)}


def _outside_port_block(view: RunView, pair: Pair, maps: set[tuple[str, ...]], evidence: list[str]) -> list[str]:
    """A `ports=block` edge NAT (a carrier's, RFC 6888) gives each address on its LAN a block of ports of its
    own: the public ports the pair's translations used, against the block of the address behind it."""
    edge = pair.edge
    if edge is None or not edge.nat or parse_nat(edge.nat).allocation != "block" or not maps:
        return []
    inside = pair.router.interface("wan").address if pair.carrier else pair.private_ip
    first, last = port_block(view.topology.network(edge.interface("lan").network).subnet, inside)
    ports = sorted({int(hops[-2].rpartition(":")[2]) for hops in maps})
    evidence.append(f"{edge.name}: {inside}'s block is ports {first}-{last}; its translations used {ports}")
    outside = [p for p in ports if not first <= p <= last]
    return [f"{edge.name} gave {inside} ports {outside}, outside its block {first}-{last}"] if outside else []


def _mapping_independent(pair: Pair) -> bool:
    """Whether every NAT between the peer and the internet maps endpoint-independently: one public endpoint
    for every remote."""
    return all(not r.nat or parse_nat(r.nat).mapping == "eim" for r in pair.routers)


@lru_cache(maxsize=1 << 16)
def _scanned_text(msg: Message) -> bytes:
    """text_without_private, once per message: its sightings on every WAN are the same message."""
    return text_without_private(msg)


def wan_leaks(view: RunView) -> list[str]:
    """Private addresses seen on a public capture point, at most one per vantage: as a source (or
    quoted in an ICMP error), as a destination at the broker, or a peer's private address as text in
    a payload (the lab's messages but the fields that declare a private endpoint by design)."""
    problems = []
    wan_vantages = {view.vantage(n.name, i.side) for n, i in view.topology.captures if view.topology.is_public(i)}
    # A private address as a whole word: 10.0.1.10 must not match inside 10.0.1.100.
    private_texts = [re.compile(rb"(?<![0-9.])" + re.escape(str(p.private_ip).encode()) + rb"(?![0-9])")
                     for p in view.pairs if view.topology.is_private(p.private_ip)]  # a public peer's is public
    broker_vantages = set(view.broker_vantages)
    for vantage in sorted(wan_vantages & set(view.caps)):
        for p in view.caps[vantage]:
            leaked = [a for a in (p.src, *p.quoted) if view.topology.is_private(a)]
            if vantage in broker_vantages and view.topology.is_private(p.dst):
                leaked.append(p.dst)
            scanned = p.payload if p.msg is None else _scanned_text(p.msg)
            if any(t.search(scanned) for t in private_texts):
                leaked.append("address in payload")
            if leaked:
                problems.append(f"{vantage}: private {leaked[0]} in {p.src}->{p.dst} at {view.when(p)}")
                break
    return problems


def check_nat_real(view: RunView) -> Check:
    problems, evidence = wan_leaks(view), []
    reported = {label: sorted(map(str, eps)) for label, eps in view.reported_endpoint_sets().items()}
    for pair in view.pairs:
        private = str(pair.private_ip)
        if not any(p.src == private for p in view.lan(pair)):
            problems.append(f"{view.vantage(*view.lan_vantage(pair))} never saw {pair.private_ip}")
            continue
        maps = _translations(view, pair)
        chain = " then ".join(r.name for r in pair.routers) or f"{pair.peer.name} (no NAT)"
        evidence += [f"{chain}: {' -> '.join(hops[:-1])} towards {hops[-1]}" for hops in sorted(maps)]
        broker_side = {hops[-2] for hops in maps if hops[-1].startswith(f"{view.broker_ip}:")}
        # An endpoint-independent mapping must use one public endpoint for every remote.
        checked = {hops[-2] for hops in maps} if _mapping_independent(pair) else broker_side
        problems += _outside_port_block(view, pair, maps, evidence)
        if not maps:
            problems.append(f"{chain}: no session datagram seen on the LAN and every WAN")
        elif not broker_side or sorted(checked) != reported.get(pair.label):
            said = ", ".join(reported.get(pair.label) or ["nothing"])
            problems.append(f"{chain}: translated to {sorted(checked)}, broker reported {said}")
    detail = "; ".join(problems) or "private addresses only on the LANs; each translation matches the broker's report"
    return Check("4", "NAT is real (no leak, translation matches)", not problems, detail, evidence)


def _filters(pair: Pair) -> bool:
    """Whether the pair's router drops what its peer did not ask for (all but EIF, full cone; a public peer has
    none)."""
    return pair.router is not None and (not pair.router.nat or parse_nat(pair.router.nat).filtering != "eif")


def _partner_cannot_test(view: RunView, pair: Pair) -> str | None:
    """Why the partner's early packets cannot reach the pair's router from its WAN (none then tests its
    filter), or None: it shares the LAN, or the carrier both sit behind turns nothing back."""
    if view.topology.same_lan(pair):
        return "shares its LAN: none of its packets come from the WAN"
    edge = pair.edge
    if view.topology.shares_edge(pair) and not parse_nat(edge.nat or DEFAULT_PRESET).hairpinning:
        return f"sits behind {edge.name} too, which does not hairpin: none of its packets reach {pair.router.name}"
    return None


def check_unsolicited(view: RunView, late_peer: str, relay_mode: str = "off") -> Check:
    problems, evidence = [], []
    reported = view.reported_endpoints()
    exercised = 0
    for pair in view.pairs:
        ping_tag = tag(TAG_UNSOLICITED, pair)
        if pair.router is None:
            seen = _ping_count(view.wan(pair), ping_tag)
            evidence.append(f"outsider -> {pair.peer.name}: {seen} at {view.vantage(*view.wan_vantage(pair))}; it has "
                            "no NAT, nothing filters what reaches it: no control")
            continue
        on_wan, on_lan = _ping_count(view.wan(pair), ping_tag), _ping_count(view.lan(pair), ping_tag)
        evidence.append(f"outsider -> {pair.private_ip}: {on_wan} on {pair.edge.name}-wan, {on_lan} on lan")
        if not on_wan:
            problems.append(f"the outsider's packets to {pair.private_ip} never reached {pair.edge.name}-wan")
        if on_lan:
            problems.append(f"{on_lan} outsider packets reached {pair.router.name}-lan")
        # The partner's probes that arrived before this peer first sent anything to the partner.
        mine, theirs = reported.get(pair.label), reported.get(view.partner(pair).label)
        if mine is None or theirs is None:
            continue
        if not _filters(pair):
            evidence.append(f"{pair.router.name} filters nothing (EIF) by design: its partner packets are no control")
            continue
        if (untested := _partner_cannot_test(view, pair)):
            evidence.append(f"{pair.label}'s partner {untested}: only the outsider tests {pair.edge.name}")
            continue
        if relay_mode == "force":
            evidence.append(f"relay forced: {pair.label}'s partner sent nothing directly, only the outsider tests "
                            f"{pair.router.name}")
            continue
        # This peer "punched" when its first direct probe or data left towards the partner, whatever port the
        # NAT chose: read where the partner's arrive, the internet side of the pair's edge router, or its own
        # router's WAN when a carrier they share hairpins them there.
        hairpinned = view.topology.shares_edge(pair)
        arrivals = view.home_wan(pair) if hairpinned else view.wan(pair)
        first_out = min(
            (p.time for p in arrivals
             if isinstance(p.msg, (Probe, Data)) and not p.relayed and p.msg.sender == pair.label),
            default=None,
        )
        partner = view.partner(pair)
        public = str(pair.router.interface("wan").address if hairpinned else pair.public_ip)
        at = view.vantage(*((pair.router.name, "wan") if hairpinned else view.wan_vantage(pair)))
        early = [
            p for p in arrivals
            if isinstance(p.msg, (Probe, Data)) and not p.relayed and p.msg.sender == partner.label
            and p.dst == public and (first_out is None or p.time < first_out)
        ]
        lan_payloads = {p.payload for p in view.lan(pair)}
        through = [p for p in early if p.payload in lan_payloads]
        exercised += len(early) if pair.side == late_peer else 0
        evidence.append(f"{len(early)} partner packets at {at} before {pair.label} punched, "
                        f"{len(through)} on lan")
        if through:
            problems.append(f"{len(through)} unsolicited partner packets reached {pair.router.name}-lan")
    if not exercised and relay_mode != "force" and any(p.side == late_peer and _filters(p) and not _partner_cannot_test(view, p)
                                                       for p in view.pairs):
        problems.append(f"no packet reached peer {late_peer}'s NAT before it punched: control not exercised")
    detail = "; ".join(problems) or "every unsolicited packet stopped at the router's WAN side"
    return Check("5a", "control: unsolicited packets are dropped", not problems, detail, evidence)


def check_no_bypass(view: RunView) -> Check:
    problems, evidence = [], []
    for pair in view.pairs:
        ping_tag = tag(TAG_NO_BYPASS, pair)
        if pair.router is None:
            evidence.append(f"{pair.peer.name} has no router: no path around one to test")
            continue
        lan = _ping_count(view.lan(pair), ping_tag)
        wan = _ping_count(view.home_wan(pair), ping_tag)
        broker = _ping_count(view.broker, ping_tag)
        evidence.append(f"{pair.peer.name} with {pair.router.name} forwarding off: lan {lan}, wan {wan}, broker {broker}")
        if not lan:
            problems.append(f"{pair.peer.name}'s pings never reached {pair.router.name}-lan (control not exercised)")
        if wan or broker:
            problems.append(f"{pair.peer.name} got past {pair.router.name} with forwarding off")
    detail = "; ".join(problems) or "with forwarding off, no peer packet left its LAN"
    return Check("5b", "control: no path around the router", not problems, detail, evidence)


DELAY_TOLERANCE_MS = 5.0  # around the configured delay, for the median crossing (libp2p's interop warns past 5 ms)
# A peer clocks its figures in user space, each end late by its own wake-up after the kernel saw the
# packet: tens of ms on a busy 2-core Docker host (14 ms measured). Both captures share one kernel clock.
PEER_CLOCK_TOLERANCE_MS = 25.0
PEER_CLOCK_TOLERANCE_SHARE = 0.10  # or a tenth of the figure, for long waits


def delay_tolerance_ms(jitter_ms: float, samples: int) -> float:
    """How far a link's median crossing may sit from its delay: DELAY_TOLERANCE_MS, and with jitter three
    standard errors of the median of `samples` uniform draws in delay ± jitter (jitter / sqrt(n) each):
    a dozen datagrams through 30 ms of jitter have a median that strays ±9 ms by chance alone."""
    return DELAY_TOLERANCE_MS + (3 * jitter_ms / max(1, samples) ** 0.5 if jitter_ms else 0.0)


def peer_clock_tolerance_ms(captured_ms: float) -> float:
    """How far a peer's own figure may sit from its capture's and still be borne out."""
    return max(PEER_CLOCK_TOLERANCE_MS, PEER_CLOCK_TOLERANCE_SHARE * captured_ms)


def check_links(view: RunView, reports: dict[str, dict] | None = None) -> Check:
    """Each conditioned router link's delay, seen in the captures: the median time a datagram spent
    between the router's LAN and WAN captures, each way, within delay_tolerance_ms of the setting.
    And what each peer reported of its path (its round trip, its wait from the introduction to the
    partner's first datagram), confirmed by its router's LAN capture within peer_clock_tolerance_ms."""
    problems, evidence = [], []
    for pair in view.pairs:
        report = (reports or {}).get(pair.label) or {}
        seen = peer_times(view, pair)
        for what, reported, captured in (("round trip", report.get("rtt_ms"), seen.rtt_ms),
                                         ("introduction to partner", _ms(report.get("time_to_first_heard_s")),
                                          seen.first_heard_ms)):
            if reported is None or captured is None:
                continue
            evidence.append(f"peer {pair.label} {what}: reported {reported:.1f} ms, {captured:.1f} ms at "
                            f"{view.vantage(*view.lan_vantage(pair))}")
            if abs(reported - captured) > peer_clock_tolerance_ms(captured):
                problems.append(f"peer {pair.label} reported a {what} of {reported:.1f} ms; the capture shows "
                                f"{captured:.1f} ms (± {peer_clock_tolerance_ms(captured):g})")
    for pair in view.pairs:
        if pair.router is None or pair.router.link is None:
            continue
        want = parse_link(pair.router.link)
        seen = crossings(view, pair)
        for direction, times, lost in (("LAN->WAN", seen.up_ms, seen.up_lost), ("WAN->LAN", seen.down_ms, seen.down_lost)):
            median = Crossings.median(times)
            evidence.append(f"{pair.router.name} {direction}: {len(times)} datagrams, median "
                            f"{'-' if median is None else f'{median:.1f}'} ms (set {want.delay_ms:g} ms"
                            f"{f' ± {want.jitter_ms:g}' if want.jitter_ms else ''}), {lost} in and not out")
            if median is None:
                problems.append(f"{pair.router.name} {direction}: no datagram seen on both sides")
            elif abs(median - want.delay_ms) > (tolerance := delay_tolerance_ms(want.jitter_ms, len(times))):
                problems.append(f"{pair.router.name} {direction}: median {median:.1f} ms, not {want.delay_ms:g} ms "
                                f"± {tolerance:.3g}")
    detail = "; ".join(problems) or f"every router's link delay, both ways, within {DELAY_TOLERANCE_MS:g} ms " \
        "(and the jitter's chance), " \
        f"and what the peers reported of their paths, within {PEER_CLOCK_TOLERANCE_MS:g} ms, in the captures"
    return Check("6", "link conditions seen in the captures", not problems, detail, evidence)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds


def conditioned(topology: Topology) -> bool:
    """Whether a router of the run had a link that is not perfect (a run without says nothing of links)."""
    return any(p.router and p.router.link and not parse_link(p.router.link).is_perfect for p in topology.pairs)


def run_checks(view: RunView, pp: PunchPair, path: PairPath, messages: int, late_peer: str,
               reports: dict[str, dict] | None = None, relay_mode: str = "off", fault: dict | None = None) -> list[Check]:
    """The checks of one punch pair's view; `path`, its path, read once (the verdict lists it too). A run
    with a fault (run.json's `fault`) has check 8 on it, and the checks the fault changes in place."""
    checks = [
        check_rendezvous(view),
        check_skip_server(view),
        check_path(view, pp, path, messages, reports),
        check_nat_real(view),
        check_unsolicited(view, late_peer, relay_mode),
        check_no_bypass(view),
    ]
    checks += [check_links(view, reports)] if conditioned(view.topology) else []
    could_relay = relay_mode != "off" and view.topology.relay is not None
    checks += [check_relay_share(pp, path, relay_mode)] if could_relay else []
    if fault:
        from lab.analysis.fault_checks import fault_checks

        for changed in fault_checks(view, pp, fault, late_peer, messages, reports or {}):
            ids = [c.id for c in checks]
            if changed.id in ids:
                checks[ids.index(changed.id)] = changed
            else:
                checks.append(changed)
    return checks


def combine(results: list[tuple[PunchPair, Check]]) -> Check:
    """One check over every pair: the count that passed, the failures named, their evidence kept."""
    first = results[0][1]
    failed = [(pp, c) for pp, c in results if not c.ok]
    total = len(results)
    if not failed:
        detail = f"{total}/{total} pairs pass (pair 1: {first.detail})"
        evidence = [f"{pp.name}: {e}" for pp, c in results for e in c.evidence]
    else:
        named = "; ".join(f"{pp.name}: {c.detail}" for pp, c in failed[:FAILURES_SHOWN])
        more = f"; {len(failed) - FAILURES_SHOWN} more in the evidence" if len(failed) > FAILURES_SHOWN else ""
        detail = f"{total - len(failed)}/{total} pairs pass; {named}{more}"
        evidence = [f"{pp.name}: {e}" for pp, c in failed for e in [c.detail, *c.evidence]]
    return Check(first.id, first.title, not failed, detail, evidence, total, [pp.number for pp, _ in failed])


def analyse(caps: dict[str, list[Packet]], topology: Topology, messages: int, late_peer: str, run_id: str = "",
            reports: dict[str, dict] | None = None, relay_mode: str = "off", fault: dict | None = None,
            candidates: str = "all") -> Verdict:
    """The checks of a run; `reports`, the peers' own (run.json), only to be confirmed by the captures
    (and to say why a path was taken)."""
    views = RunView(caps, topology).per_pair()
    # A peer killed mid-exchange cut it short: the path is the one its first messages took.
    complete_at = 1 if fault and fault["kind"] == FAULT_PEER_KILLED else messages
    paths = [pair_path(v, pp, complete_at, relay_mode, late_peer, candidates) for pp, v in views]
    path_rows = [{"pair": p.number, "path": p.path, "expected": p.expected.path, "reason": p.expected.reason}
                 for p in paths]
    per_pair = [(pp, run_checks(v, pp, path, messages, late_peer, reports, relay_mode, fault))
                for (pp, v), path in zip(views, paths)]
    if len(per_pair) == 1:
        (_, checks), = per_pair
        for check in checks:
            check.failed_pairs = [] if check.ok else [1]
        return Verdict(run_id, checks, path_rows)
    by_check = zip(*[[(pp, check) for check in checks] for pp, checks in per_pair])
    return Verdict(run_id, [combine(list(results)) for results in by_check], path_rows)


# The checks that pass on the absence of packets: inconclusive when a capture is incomplete (check 0).
PASS_ON_ABSENCE = ("2", "4", "5a", "5b", "7", "8")


def judge(run: LoadedRun) -> Verdict:
    """The verdict of a run already read, its captures' completeness first (computed only: the CLI
    writes verdict.json)."""
    from lab.analysis.capture_check import with_capture_check

    config = run.record["config"]
    view = run.view
    verdict = analyse(view.caps, view.topology, config["messages"], config["late_peer"], run.record["run_id"],
                      run.record.get("peers"), config.get("relay", "off"), run.record.get("fault"),
                      config.get("candidates", "all"))
    return with_capture_check(run, verdict, PASS_ON_ABSENCE)


def analyse_run(run_dir: Path) -> Verdict:
    """The verdict of a run directory (pcaps + run.json)."""
    return judge(read_run(run_dir))
