"""The path verdict on built pcaps: direct, relayed through TURN channels, failed; the relay's share,
and why a pair had no relayed candidate, read from the relay's capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.analysis.journeys import journeys
from lab.analysis.ladder import Channel, build_ladder
from lab.analysis.packets import load_run
from lab.analysis.paths import allocations, expected_path, pair_path
from lab.analysis.run import RunView
from lab.analysis.verdict import analyse
from tests.helpers.pcap_factory import LATE_PEER, MESSAGES, Faults, build_run

HARD = dict(nat_a="symmetric", nat_b="symmetric")


def run(tmp_path: Path, faults: Faults, relay: str, pairs: int = 1):
    topo = build_run(tmp_path, faults, pairs=pairs).topology
    caps = load_run(tmp_path)
    return analyse(caps, topo, MESSAGES, LATE_PEER, "test", relay_mode=relay), RunView(caps, topo)


def check(verdict, cid: str):
    return next(c for c in verdict.checks if c.id == cid)


def test_a_relayed_exchange_between_symmetric_nats_is_the_path_they_allow(tmp_path):
    verdict, view = run(tmp_path, Faults(relayed=True, **HARD), "auto")
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    assert verdict.paths == [{"pair": 1, "path": "relayed", "expected": "relayed",
                              "reason": verdict.paths[0]["reason"]}]
    assert check(verdict, "3").detail.startswith("relayed: no direct path: a's NAT maps per destination (apdm)")
    (pp,) = view.topology.punch_pairs
    path = pair_path(view, pp, MESSAGES, "auto")
    assert not path.punched and path.at_relay == 2 * 2 * MESSAGES  # each message into the relay and out of it
    assert all(w.relayed == frozenset(range(1, MESSAGES + 1)) and not w.direct for w in path.ways)
    assert "7" in {c.id for c in verdict.checks} and check(verdict, "7").ok


def test_a_relayed_exchange_where_the_nats_allow_a_direct_path_fails_the_path_check(tmp_path):
    verdict, _ = run(tmp_path, Faults(relayed=True), "auto")
    path = check(verdict, "3")
    assert not path.ok and path.detail.startswith("relayed, not direct as expected"), path.detail


def test_relay_forced_expects_the_relay_and_a_direct_exchange_fails_both_relay_checks(tmp_path):
    verdict, _ = run(tmp_path, Faults(), "force")
    assert not check(verdict, "3").ok and "not relayed as expected: relay forced" in check(verdict, "3").detail
    share = check(verdict, "7")
    assert not share.ok and f"yet {2 * MESSAGES} messages arrived directly" in share.detail
    assert check(verdict, "5a").ok  # forced: the partner's probes are no control, the outsider's still are


def test_relay_off_leaves_the_relay_check_out_and_expects_no_path_between_symmetric_nats(tmp_path):
    verdict, view = run(tmp_path, Faults(one_way=True, **HARD), "off")
    assert "7" not in {c.id for c in verdict.checks}
    assert verdict.paths[0]["path"] == "failed" and verdict.paths[0]["expected"] == "failed"
    assert expected_path(view.topology.punch_pairs[0], "auto").path == "relayed"


def test_refused_turn_credentials_fail_the_pair_and_the_relay_capture_says_why(tmp_path):
    verdict, view = run(tmp_path, Faults(relayed=True, turn_refused=True, **HARD), "auto")
    path = check(verdict, "3")
    assert not path.ok and path.detail.startswith("failed: no direct path"), path.detail
    assert "the relay refused peer a's credentials (401 to 1 authenticated Allocate)" in path.detail
    a, b = view.topology.pairs
    assert allocations(view, a).refused == 1 and not allocations(view, a).granted
    assert allocations(view, b).granted == 1 and allocations(view, b).requests == 2
    assert allocations(view, a).challenged == allocations(view, b).challenged == 1  # none had credentials at first


def test_paths_are_per_pair_in_a_bigger_lab(tmp_path):
    verdict, _ = run(tmp_path, Faults(relayed=True, turn_refused=True, **HARD), "auto", pairs=2)
    assert [(p["pair"], p["path"]) for p in verdict.paths] == [(1, "failed"), (2, "relayed")]
    assert check(verdict, "3").failed_pairs == [1]


def test_the_ladder_draws_relayed_datagrams_and_turn_through_the_relay(tmp_path):
    _, view = run(tmp_path, Faults(relayed=True, **HARD), "auto")
    ladder = build_ladder(view, journeys(view.caps))
    relayed = [a for a in ladder.arrows if a.channel is Channel.RELAY]
    assert {a.what for a in relayed} >= {"Allocate request", "Allocate error 401", "Allocate success", "data"}
    assert {(a.src, a.dst) for a in relayed if a.what == "data"} == {("peer-a", "relay"), ("relay", "peer-b"),
                                                                     ("peer-b", "relay"), ("relay", "peer-a")}
    assert "relay" in [lane.node for lane in ladder.lanes]
    assert not [a for a in ladder.arrows if a.what == "data" and a.channel is Channel.DIRECT]


@pytest.mark.parametrize("relay", ["auto", "off"])
def test_a_direct_run_stays_direct_whatever_the_relay_mode(tmp_path, relay):
    verdict, _ = run(tmp_path, Faults(), relay)
    assert verdict.ok and verdict.paths[0]["path"] == "direct", [c.detail for c in verdict.checks if not c.ok]
