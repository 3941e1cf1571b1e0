"""Each router's NAT table as its two captures show it: private ip:port <-> public ip:port <-> remote.

A datagram seen on both sides of a router (one journey, lab.analysis.journeys) shows the translation the
router applied: leaving, the LAN source became the WAN source; arriving, the WAN destination
became the LAN destination. Rows are what the routers did, not what they should have done: a
packet that crossed without translation (a router forwarding to a private address, as with its
firewall off) shows up as a row whose public side equals its private side.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.analysis.flows import endpoint_text
from lab.analysis.journeys import Journey, by_vantage
from lab.analysis.packets import Packet
from lab.analysis.run import RunView
from lab.topology import pairs_behind


@dataclass
class Translation:
    router: str
    private: str
    public: str
    remote: str
    first: float  # seconds since the run's first packet
    outbound: int = 0  # datagrams LAN -> WAN
    inbound: int = 0  # datagrams WAN -> LAN
    reported: bool = False  # the public side is an endpoint the broker reported for a peer behind this router
    behind: str | None = None  # the carrier NAT this router's WAN sits behind (cgnat): the broker sees the carrier's

    @property
    def translated(self) -> bool:
        return self.private != self.public


def _ep(p: Packet, side: str) -> str:
    return endpoint_text(p.src, p.sport) if side == "src" else endpoint_text(p.dst, p.dport)


def nat_table(view: RunView, trips: list[Journey]) -> list[Translation]:
    """The translations of every router, each router's rows in the order they first appeared."""
    said = view.reported_endpoint_sets()
    passed = by_vantage(trips)
    out: list[Translation] = []
    # A router's table once, with every peer behind it (a same-lan router's two, a carrier's): both reported.
    for node, behind in pairs_behind(view.pairs):
        router = node.name
        carrier = next((p.carrier.name for p in behind if p.carrier and p.carrier != node), None)
        router_reported = {str(ep) for pair in behind for ep in said.get(pair.label, ())}
        lan_v, wan_v = view.vantage(router, "lan"), view.vantage(router, "wan")
        rows: dict[tuple[str, str, str], Translation] = {}
        for trip in passed.get(lan_v, []):  # a translation is seen on both sides: the LAN's will do
            lan, wan = trip.at(lan_v), trip.at(wan_v)
            if lan is None or wan is None:
                continue
            leaving = lan.time <= wan.time
            if leaving:
                key = (_ep(lan, "src"), _ep(wan, "src"), _ep(wan, "dst"))
            else:
                key = (_ep(lan, "dst"), _ep(wan, "dst"), _ep(wan, "src"))
            row = rows.get(key)
            if row is None:
                public = key[1]
                row = rows[key] = Translation(router, *key, first=min(lan.time, wan.time) - view.t0,
                                              reported=public in router_reported, behind=carrier)
            row.outbound += leaving
            row.inbound += not leaving
        out += sorted(rows.values(), key=lambda r: r.first)
    return out


def chains(translations: list[Translation]) -> list[str]:
    """Each translation through two NATs (a home router behind a carrier), as one line: the private endpoint,
    the home router's public side, the carrier's, and the remote; joined where the carrier's private side is
    the home router's public side towards the same remote."""
    outer = {(t.router, t.private, t.remote): t for t in translations if not t.behind}
    out = []
    for t in translations:
        carrier = outer.get((t.behind, t.public, t.remote)) if t.behind else None
        if carrier:
            out.append(f"{t.private} -> {t.router} -> {t.public} -> {carrier.router} -> {carrier.public}, "
                       f"towards {t.remote}")
    return out
