"""System tests: the TURN relay (coturn) on the WAN, and the path of each pair proven from the pcaps,
on each engine. The relay-down test kills the relay's turnserver, so it comes last in the module
(each module has a lab of its own)."""

from __future__ import annotations

import json

import pytest

from lab.analysis.paths import allocations, pair_path
from lab.analysis.run import read_run
from lab.analysis.verdict import analyse_run
from lab.engines import node_commands
from lab.experiment import punch_test
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from tests.helpers.labs import needs_root, say

pytestmark = [needs_root]
MESSAGES = 5


@pytest.fixture
def nats(engine):
    """Set both routers' NAT for a test, and put them back."""
    routers = [p.router.name for p in engine.topology.pairs]

    def set_both(setting: str) -> None:
        for router in routers:
            set_nat(engine, router, setting)

    yield set_both
    set_both("port-restricted")


def run(engine, tmp_path, relay: str):
    run_dir = run_punch_test(engine, PunchTestConfig(messages=MESSAGES, relay=relay), tmp_path / relay, say)
    record = json.loads((run_dir / "run.json").read_text())
    return run_dir, record, analyse_run(run_dir)


def path_of(run_dir, messages=MESSAGES, relay="auto"):
    run = read_run(run_dir)
    (pp,) = run.view.topology.punch_pairs
    return pair_path(run.view, pp, messages, relay)


def test_the_relay_answers_and_shows_in_status(engine):
    state = node_commands.relay_check().run(engine, engine.topology.relay.name)
    assert state["answering"] and state["addresses"] == ["198.51.100.20"], state


def test_symmetric_on_both_sides_goes_through_the_relay_and_delivers_everything(engine, nats, tmp_path):
    nats("symmetric")
    run_dir, record, verdict = run(engine, tmp_path, "auto")
    for label, peer in record["peers"].items():
        assert peer["ok"] and peer["route"] == "relayed" and peer["received_seqs"] == list(range(1, MESSAGES + 1)), \
            (label, peer)
        assert peer["fell_back_after_s"] is not None
    assert verdict.ok, [c for c in verdict.checks if not c.ok]
    assert verdict.paths == [{"pair": 1, "path": "relayed", "expected": "relayed",
                              "reason": verdict.paths[0]["reason"]}]
    path = path_of(run_dir)
    assert not path.punched and path.at_relay > 0
    assert all(way.relayed == frozenset(range(1, MESSAGES + 1)) and not way.direct for way in path.ways)
    # the relay's capture shows the 401 each allocation starts with (no credentials yet), then success
    for side in engine.topology.pairs:
        seen = allocations(read_run(run_dir).view, side)
        assert seen.challenged >= 1 and seen.granted >= 1 and not seen.refused, (side.label, seen)


def test_port_restricted_pairs_punch_and_the_relay_carries_no_data(engine, tmp_path):
    run_dir, record, verdict = run(engine, tmp_path, "auto")
    assert all(peer["route"] == "direct" and peer["relayed"] for peer in record["peers"].values()), record["peers"]
    assert verdict.ok, [c for c in verdict.checks if not c.ok]
    share = next(c for c in verdict.checks if c.id == "7")
    assert share.ok and "0 datagrams of data at the relay" in share.evidence[0], share
    path = path_of(run_dir)
    assert path.path == "direct" and path.punched and path.at_relay == 0


def test_relay_forced_on_a_pair_that_could_punch_goes_through_the_relay(engine, tmp_path):
    run_dir, record, verdict = run(engine, tmp_path, "force")
    assert all(peer["route"] == "relayed" for peer in record["peers"].values()), record["peers"]
    assert verdict.ok, [c for c in verdict.checks if not c.ok]
    path = path_of(run_dir, relay="force")
    assert path.path == "relayed" and not any(way.direct for way in path.ways)


def test_a_wrong_turn_password_is_refused_and_the_verdict_says_so(engine, nats, tmp_path, monkeypatch):
    minted = punch_test.turn_credentials

    def wrong_for_a(eng, relay, valid_s):
        creds = minted(eng, relay, valid_s)
        creds["a"] = creds["a"].__class__(creds["a"].server, creds["a"].username, "not-the-password")
        return creds

    monkeypatch.setattr(punch_test, "turn_credentials", wrong_for_a)
    nats("symmetric")
    run_dir, record, verdict = run(engine, tmp_path, "auto")
    assert "401" in record["peers"]["a"]["relay_error"], record["peers"]["a"]
    assert not verdict.ok
    check = next(c for c in verdict.checks if c.id == "3")
    assert not check.ok and "the relay refused peer a's credentials (401" in check.detail, check.detail
    refused = allocations(read_run(run_dir).view, engine.topology.pair("a"))
    assert refused.refused >= 1 and not refused.granted, refused


def test_with_the_relay_down_a_pair_that_cannot_punch_fails_and_the_verdict_says_why(engine, nats, tmp_path):
    nats("symmetric")
    relay = engine.topology.relay.name
    assert node_commands.relay_kill().run(engine, relay)["killed"]
    assert not node_commands.relay_check().run(engine, relay)["answering"]
    run_dir, record, verdict = run(engine, tmp_path, "auto")
    assert not any(peer["ok"] for peer in record["peers"].values()), record["peers"]
    assert all("no answer from the relay" in peer["relay_error"] for peer in record["peers"].values())
    check = next(c for c in verdict.checks if c.id == "3")
    assert not check.ok and check.detail.startswith("failed: no direct path"), check.detail
    assert "the relay never answered peer a's Allocate" in check.detail, check.detail
    assert verdict.paths[0]["path"] == "failed" and verdict.paths[0]["expected"] == "relayed"
