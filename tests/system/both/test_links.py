"""System tests: a router's access link conditioned on the running lab, and the condition read back
from the pcaps (the same datagram at the router's LAN and at its WAN), on each engine."""

from __future__ import annotations

import json
import statistics

from lab.analysis.packets import Packet, load_run
from lab.analysis.verdict import analyse_run
from lab.experiment.link_control import read_back, set_link
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from tests.helpers.labs import needs_root, say

pytestmark = [needs_root]
TOLERANCE_MS = 5  # libp2p's hole-punch interop warns outside ±5 ms


def crossing_ms(caps: dict[str, list[Packet]], pair) -> tuple[list[float], list[float]]:
    """How long each UDP datagram took from the router's LAN capture to its WAN capture (what the peer
    sent) and from its WAN to its LAN (what came to the peer), matched by payload."""
    router, private, public = pair.router.name, str(pair.private_ip), str(pair.public_ip)
    lan, wan = caps[f"{router}-lan"], caps[f"{router}-wan"]

    def first(packets: list[Packet], keep) -> dict[bytes, float]:
        out: dict[bytes, float] = {}
        for p in packets:
            if p.sport is not None and p.payload and keep(p):
                out.setdefault(p.payload, p.time)
        return out

    sent_lan, sent_wan = first(lan, lambda p: p.src == private), first(wan, lambda p: p.src == public)
    came_wan, came_lan = first(wan, lambda p: p.dst == public), first(lan, lambda p: p.dst == private)
    up = [(sent_wan[k] - t) * 1000 for k, t in sent_lan.items() if k in sent_wan]
    down = [(came_lan[k] - t) * 1000 for k, t in came_wan.items() if k in came_lan]
    return up, down


def test_a_delay_set_on_a_running_lab_shows_between_the_routers_captures_both_ways(engine, tmp_path):
    pair = engine.topology.pair("a")
    router = pair.router.name
    state = set_link(engine, router, "delay=50ms")
    assert state["installed"]["delay_ms"] == 50 and state["queued_interfaces"] == 2, state
    try:
        run_dir = run_punch_test(engine, PunchTestConfig(messages=5), tmp_path / "slow", say)
    finally:
        back = set_link(engine, router, "lan")
    assert back["describe"] == "lan" and back["queued_interfaces"] == 0, back
    assert analyse_run(run_dir).ok
    record = json.loads((run_dir / "run.json").read_text())
    assert record["link_conditions"][router]["installed"]["delay_ms"] == 50
    up, down = crossing_ms(load_run(run_dir), pair)
    assert len(up) >= 10 and len(down) >= 10, (up, down)
    for what, times in (("LAN to WAN", up), ("WAN to LAN", down)):
        assert abs(statistics.median(times) - 50) <= TOLERANCE_MS, f"{what}: {sorted(times)}"
        assert min(times) >= 50 - 1, f"{what}: a datagram beat the link: {sorted(times)}"
    say(f"{router} delay=50ms: LAN->WAN median {statistics.median(up):.1f} ms, WAN->LAN {statistics.median(down):.1f} ms")

    # taken off again at once: the next run crosses the router in well under a millisecond
    fast = run_punch_test(engine, PunchTestConfig(messages=3), tmp_path / "fast", say)
    up, down = crossing_ms(load_run(fast), pair)
    assert up and down and max(up + down) < 5, (up, down)


def test_loss_and_rate_are_installed_in_the_kernel_and_read_back(engine):
    router = engine.topology.pair("b").router.name
    try:
        state = set_link(engine, router, "loss=1%,rate=2mbit")
        assert state["installed"]["loss_pct"] == 1 and state["installed"]["rate_kbit"] == 2000, state
        assert state["queued_interfaces"] == 0  # nothing to hold: the stage is not in the path
        (shown,) = read_back(engine, [engine.topology.node(router)]).values()
        assert shown["setting"] == "loss=1%,rate=2mbit" and shown["describe"] == "loss=1%,rate=2mbit"
    finally:
        assert set_link(engine, router, "lan")["describe"] == "lan"
