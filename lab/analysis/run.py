"""The run model: one run's captures named by its own topology, as every analysis reads them.

A run directory holds the pcaps of every vantage point and run.json (the topology snapshot, the
settings and the peers' own reports); read_run reads it once for the verdict and the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address
from pathlib import Path

from lab.analysis.packets import Packet, records
from lab.analysis.pcap_io import Capture, PcapError, read_captures
from lab.errors import LabError
from lab.run_format import RUN_FORMAT, RUN_RECORD
from lab.topology import Pair, PunchPair, Topology, vantage_name
from wire.protocol import Endpoint, Intro, Register, Waiting


class RunView:
    """The captures of one run, with the topology's names for them."""

    def __init__(
        self, caps: dict[str, list[Packet]], topology: Topology, pairs: list[Pair] | None = None,
        t0: float | None = None,
    ) -> None:
        self.caps = caps
        self.topology = topology
        self.broker_ip = str(topology.broker.address)
        self.pairs = topology.pairs if pairs is None else pairs
        self.labels = {p.label for p in self.pairs}
        self.t0 = min((p.time for packets in caps.values() for p in packets), default=0.0) if t0 is None else t0

    def for_pair(self, punch_pair: PunchPair) -> RunView:
        """The run as one punch pair sees it: its routers' captures, and the packets at shared vantage
        points (the broker's) that carry one of its addresses, or no pair's address at all."""
        own = {str(ip) for side in punch_pair.sides for ip in addresses_of(side)}
        mine = {n.name for side in punch_pair.sides for n in (side.peer, *side.routers)}
        caps = {}
        for node, iface in self.topology.captures:
            vantage = self.vantage(node.name, iface.side)
            if node.name in mine:
                caps[vantage] = self.caps.get(vantage, [])
            elif vantage in self._shared:
                packets, by_address, unowned = self._shared[vantage]
                picked = set(unowned).union(*(by_address.get(ip, ()) for ip in own))
                caps[vantage] = [packets[i] for i in sorted(picked)]
        return RunView(caps, self.topology, list(punch_pair.sides), self.t0)

    def per_pair(self) -> list[tuple[PunchPair, RunView]]:
        """Each punch pair with its view of the run (this view itself when the lab has one pair)."""
        punch_pairs = self.topology.punch_pairs
        return [(pp, self if len(punch_pairs) == 1 else self.for_pair(pp)) for pp in punch_pairs]

    @cached_property
    def _shared(self) -> dict[str, tuple[list[Packet], dict[str, list[int]], list[int]]]:
        """The packets of the vantage points no pair of the view owns (the broker's), indexed by address
        (packet positions), with the positions of those that carry no pair's address: made once, so
        that each of a big lab's hundreds of pairs picks its own without scanning them all."""
        owned = {str(ip) for pair in self.pairs for ip in addresses_of(pair)}
        paired_nodes = {n.name for pair in self.pairs for n in (pair.peer, *pair.routers)}
        shared: dict[str, tuple[list[Packet], dict[str, list[int]], list[int]]] = {}
        for node, iface in self.topology.captures:
            if node.name in paired_nodes:
                continue
            vantage = self.vantage(node.name, iface.side)
            packets = self.caps.get(vantage, [])
            by_address: dict[str, list[int]] = {}
            unowned = []
            for i, p in enumerate(packets):
                addrs = {p.src, p.dst, *p.quoted}
                for ip in addrs & owned:
                    by_address.setdefault(ip, []).append(i)
                if owned.isdisjoint(addrs):
                    unowned.append(i)
            shared[vantage] = (packets, by_address, unowned)
        return shared

    def when(self, p: Packet) -> str:
        """A packet's time relative to the first packet of the run, as users read it in tshark."""
        return f"+{p.time - self.t0:.6f}s"

    @staticmethod
    def vantage(node: str, side: str) -> str:
        """A capture point's name, as its pcap is named."""
        return vantage_name(node, side)

    @property
    def vantages(self) -> list[str]:
        """Every capture point the topology names, in its stable order."""
        return [self.vantage(n.name, i.side) for n, i in self.topology.captures]

    def at(self, node: str, side: str) -> list[Packet]:
        return self.caps.get(self.vantage(node, side), [])

    @property
    def broker_vantages(self) -> list[str]:
        broker = self.topology.broker
        return [self.vantage(broker.name, i.side) for i in broker.interfaces]

    @property
    def broker(self) -> list[Packet]:
        """What the broker saw, on all its public segments, in time order."""
        vantages = self.broker_vantages
        if len(vantages) == 1:
            return self.caps.get(vantages[0], [])
        return sorted((p for v in vantages for p in self.caps.get(v, [])), key=lambda p: p.time)

    @property
    def relay_vantages(self) -> list[str]:
        relay = self.topology.relay
        return [] if relay is None else [self.vantage(relay.name, i.side) for i in relay.interfaces]

    @cached_property
    def relay_ips(self) -> frozenset[str]:
        """The relay's addresses (none in a run without one)."""
        relay = self.topology.relay
        return frozenset(str(a) for a in relay.addresses) if relay else frozenset()

    @cached_property
    def relay(self) -> list[Packet]:
        """What the relay saw, on all its public segments, in time order (nothing in a run without one)."""
        return sorted((p for v in self.relay_vantages for p in self.caps.get(v, [])), key=lambda p: p.time)

    def wan(self, pair: Pair) -> list[Packet]:
        """What the pair's edge router (its carrier's, else its own) saw on the internet side; a public peer's
        own capture."""
        return self.at(*self.wan_vantage(pair))

    @staticmethod
    def wan_vantage(pair: Pair) -> tuple[str, str]:
        """(node, side) of the capture `wan` reads."""
        return (pair.edge.name, "wan") if pair.edge else RunView.peer_vantage(pair)

    def home_wan(self, pair: Pair) -> list[Packet]:
        """What the peer's own router saw on its WAN: the internet's side, or a carrier's segment (cgnat); a
        public peer's own capture."""
        return self.at(pair.router.name, "wan") if pair.router else self.lan(pair)

    def lan(self, pair: Pair) -> list[Packet]:
        """What the peer's own router saw on its LAN; a public peer's own capture (it has no LAN)."""
        return self.at(*self.lan_vantage(pair))

    @staticmethod
    def lan_vantage(pair: Pair) -> tuple[str, str]:
        """(node, side) of the capture `lan` reads."""
        return (pair.router.name, "lan") if pair.router else RunView.peer_vantage(pair)

    def at_peer(self, pair: Pair) -> list[Packet]:
        """What reached the pair's peer: its own capture where it has one (a same-lan peer, whose partner's
        packets never cross the router), else its router's LAN, the last point before it."""
        return self.at(*self.peer_vantage(pair))

    @staticmethod
    def peer_vantage(pair: Pair) -> tuple[str, str]:
        """(node, side) of the capture at_peer reads."""
        return (pair.peer.name, pair.peer.interfaces[0].side) if pair.peer.captured else (pair.router.name, "lan")

    def partner(self, pair: Pair) -> Pair:
        """The other side of the pair's punch pair."""
        return self.topology.partner(pair)

    def introductions(self) -> list[Packet]:
        """The introductions the broker sent to the view's peers, as its own capture saw them leave."""
        return [
            p for p in self.broker
            if isinstance(p.msg, Intro) and p.src == self.broker_ip and p.msg.partner in self.labels
        ]

    def registrations(self) -> tuple[list[Packet], list[Packet]]:
        """The registers the broker got, split into accepted (answered with waiting or an
        introduction for their transaction) and refused (no secret, a replay, a full room)."""
        answered = {(str(p.dst_ep), p.msg.txn) for p in self.broker
                    if isinstance(p.msg, (Waiting, Intro)) and p.src == self.broker_ip}
        received = [p for p in self.broker if isinstance(p.msg, Register) and p.dst == self.broker_ip]
        accepted = [p for p in received if (str(p.src_ep), p.msg.txn) in answered]
        return accepted, [p for p in received if (str(p.src_ep), p.msg.txn) not in answered]

    def reported_endpoints(self) -> dict[str, Endpoint]:
        """Each peer's public endpoint as the broker last told its partner (from the intros it sent)."""
        return {p.msg.partner: p.msg.partner_endpoint for p in self.introductions()}

    def predicted_endpoints(self) -> dict[str, set[Endpoint]]:
        """Each peer's predicted public endpoints (port prediction), as the broker handed them to its partner."""
        out: dict[str, set[Endpoint]] = {}
        for p in self.introductions():
            out.setdefault(p.msg.partner, set()).update(p.msg.partner_predicted)
        return out

    def reported_endpoint_sets(self) -> dict[str, set[Endpoint]]:
        """Every public endpoint the broker told a peer's partner of: more than one after a rebinding."""
        out: dict[str, set[Endpoint]] = {}
        for p in self.introductions():
            out.setdefault(p.msg.partner, set()).add(p.msg.partner_endpoint)
        return out


def addresses_of(pair: Pair) -> tuple[IPv4Address, ...]:
    """The addresses that make a packet at a shared vantage point one pair's business."""
    return (pair.public_ip, pair.private_ip, *(r.interface(side).address for r in pair.routers for side in ("lan", "wan")))



@dataclass(frozen=True)
class LoadedRun:
    """A run directory read once: its record (run.json), its pcaps as captured (for the merged
    capture) and as packet records named by the run's topology (for the checks and the report)."""

    dir: Path
    record: dict
    captures: dict[str, Capture]
    view: RunView


def read_record(run_dir: Path) -> dict:
    """A run's run.json, refused with the file and what is wrong if it is not one this natlab reads."""
    path = run_dir / RUN_RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(f"{path}: missing (a run directory holds run.json and its pcaps)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"{path}: cannot be read ({exc})") from None
    except ValueError as exc:
        raise LabError(f"{path}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise LabError(f"{path}: not a natlab run record (a JSON {type(record).__name__}, not an object)")
    version = record.get("format", 1)
    if not isinstance(version, int) or version > RUN_FORMAT:
        raise LabError(f"{path}: a run of format {version!r}, written by a newer natlab; this one reads format "
                       f"{RUN_FORMAT} and older")
    missing = [key for key in ("run_id", "config", "topology") if key not in record]
    if missing:
        raise LabError(f"{path}: not a natlab run record (no {', '.join(missing)})")
    return record


def read_run(run_dir: Path) -> LoadedRun:
    """A run directory's record and its captures, named by the run's own topology snapshot; a bad
    file is refused (LabError, naming it), before anything is written."""
    record = read_record(run_dir)
    try:
        topology = Topology.from_json(record["topology"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"{run_dir / RUN_RECORD}: its topology does not read ({type(exc).__name__}: {exc})") from None
    try:
        captures = read_captures(run_dir)
    except PcapError as exc:
        raise LabError(str(exc)) from None
    if not captures:
        raise LabError(f"{run_dir}: no pcaps (a run directory holds one per capture point: <node>-<side>.pcap)")
    return LoadedRun(run_dir, record, captures, RunView(records(captures), topology))
