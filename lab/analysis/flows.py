"""The flows of a run at each capture point: what went where, how much, when, and what for.

A flow here is one direction of a 5-tuple at one vantage point, split by the role its packets
play (lab.analysis.packet_roles): a peer's probes and its data share a 5-tuple but tell different parts of the
story, so they get a row each.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.analysis.packet_roles import PacketRole, role_of
from lab.analysis.packets import Packet, protocol_name
from lab.analysis.run import RunView


def endpoint_text(address: str, port: int | None) -> str:
    return f"{address}:{port}" if port else address


@dataclass
class Flow:
    vantage: str
    proto: str
    src: str
    dst: str
    role: PacketRole
    packets: int = 0
    bytes: int = 0
    first: float = 0.0  # seconds since the run's first packet
    last: float = 0.0

    def add(self, p: Packet, t0: float) -> None:
        t = p.time - t0
        self.first, self.last = (t, t) if not self.packets else (min(self.first, t), max(self.last, t))
        self.packets += 1
        self.bytes += p.length


def flows(view: RunView) -> list[Flow]:
    """Every flow at every vantage point, vantage points in topology order, flows by first packet."""
    order = view.vantages + sorted(set(view.caps) - set(view.vantages))
    out: list[Flow] = []
    for vantage in order:
        by_key: dict[tuple, Flow] = {}
        for p in view.caps.get(vantage, []):
            key = (protocol_name(p.proto), endpoint_text(p.src, p.sport),
                   endpoint_text(p.dst, p.dport), role_of(p))
            flow = by_key.get(key)
            if flow is None:
                flow = by_key[key] = Flow(vantage, *key)
            flow.add(p, view.t0)
        out += sorted(by_key.values(), key=lambda f: f.first)
    return out
