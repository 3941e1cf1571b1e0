"""System tests: a router's access link conditioned on the running lab, and the condition read back
from the pcaps (the same datagram at the router's LAN and at its WAN), on each engine."""

from __future__ import annotations

import json
import statistics

from lab.analysis.link_delays import crossings
from lab.analysis.run import read_run
from lab.analysis.verdict import analyse_run
from lab.experiment.link_control import read_back, set_link
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from tests.helpers.labs import needs_root, say

pytestmark = [needs_root]
TOLERANCE_MS = 5  # libp2p's hole-punch interop warns outside ±5 ms


def test_a_100ms_link_set_on_a_running_lab_shows_between_the_routers_captures_both_ways(engine, tmp_path):
    pair = engine.topology.pair("a")
    router = pair.router.name
    state = set_link(engine, router, "delay=100ms")
    assert state["installed"]["delay_ms"] == 100 and state["queued_interfaces"] == 2, state
    try:
        run_dir = run_punch_test(engine, PunchTestConfig(messages=5), tmp_path / "slow", say)
    finally:
        back = set_link(engine, router, "lan")
    assert back["describe"] == "lan" and back["queued_interfaces"] == 0, back
    verdict = analyse_run(run_dir)
    assert verdict.ok and "6" in [c.id for c in verdict.checks], verdict.checks  # the link, seen in the pcaps
    record = json.loads((run_dir / "run.json").read_text())
    assert record["link_conditions"][router]["installed"]["delay_ms"] == 100
    seen = crossings(read_run(run_dir).view, pair)
    up, down = seen.up_ms, seen.down_ms
    assert len(up) >= 10 and len(down) >= 10, (up, down)
    for what, times in (("LAN to WAN", up), ("WAN to LAN", down)):
        assert abs(statistics.median(times) - 100) <= TOLERANCE_MS, f"{what}: {sorted(times)}"
        assert min(times) >= 100 - 1, f"{what}: a datagram beat the link: {sorted(times)}"
    say(f"{router} delay=100ms: LAN->WAN median {statistics.median(up):.1f} ms, WAN->LAN {statistics.median(down):.1f} ms")

    # taken off again at once: the next run crosses the router in well under a millisecond
    fast = run_punch_test(engine, PunchTestConfig(messages=3), tmp_path / "fast", say)
    seen = crossings(read_run(fast).view, pair)
    up, down = seen.up_ms, seen.down_ms
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


def test_a_punch_through_30_percent_loss_on_both_links_delivers_every_message(engine, tmp_path):
    routers = [p.router.name for p in engine.topology.pairs]
    try:
        for router in routers:
            assert set_link(engine, router, "loss=30%")["installed"]["loss_pct"] == 30
        run_dir = run_punch_test(engine, PunchTestConfig(messages=10), tmp_path, say)
    finally:
        for router in routers:
            set_link(engine, router, "lan")
    record = json.loads((run_dir / "run.json").read_text())
    for label, peer in record["peers"].items():
        assert peer["ok"] and peer["received_seqs"] == list(range(1, 11)), (label, peer)
    assert sum(peer["retransmissions"] for peer in record["peers"].values()) > 0  # the loss was real
    verdict = analyse_run(run_dir)
    # Every check holds; but under this much loss peer a's introduction may come after b has started
    # (each lost answer costs a half-second re-register), so that none of a's probes met b's NAT before
    # b punched: the verdict then says the unsolicited control was not exercised, which is true.
    failed = [c for c in verdict.checks if not c.ok]
    unexercised = "no packet reached peer b's NAT before it punched: control not exercised"
    assert all(c.id == "5a" and c.detail == unexercised for c in failed), failed
