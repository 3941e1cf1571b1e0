"""The real broker process on 127.0.0.1: thousands of hostile datagrams, then a rendezvous that works.

Everything here is sent to 127.0.0.1 only, to a broker started for the test on free high ports.
"""

from __future__ import annotations

import json
import time

import pytest

from peers.flood import flood
from tests.helpers.loopback import LoopbackBroker, punch_pair, punch_peer

JUNK = 3000


@pytest.fixture
def unlimited(tmp_path):
    """A broker with its rate limits off, so that every junk datagram reaches a parser."""
    broker = LoopbackBroker(tmp_path / "broker", "--rate", "0", "--stun-rate", "0")
    yield broker
    broker.stop()


@pytest.fixture
def limited(tmp_path):
    broker = LoopbackBroker(tmp_path / "broker")  # the default limits
    yield broker
    broker.stop()


def test_junk_does_not_stop_the_broker_and_a_rendezvous_works_after_it(unlimited):
    outcome = flood(unlimited.endpoint, JUNK, rate=5000, max_seconds=30, also_port=unlimited.alt_port)
    assert outcome["sent"] == JUNK
    assert unlimited.alive
    results = punch_pair(unlimited.endpoint, "after-junk", unlimited.secret("after-junk"))
    for peer, result in results.items():
        assert result["ok"], (peer, result)
    status = unlimited.status()
    stats = status["stats"]
    assert stats["datagrams"] >= JUNK / 2  # the kernel may drop some when its socket buffer is full
    for reason in ("malformed", "oversize", "stun-unanswerable", "unauthenticated", "not-the-rendezvous-socket"):
        assert stats["dropped"].get(reason, 0) > 0, (reason, stats["dropped"])
    assert stats["rendezvous"]["introductions"] == 1 and stats["rooms"] == 1
    assert status["VmRSS"] < 200_000  # kB: bounded, a fraction of what a leak per datagram would take
    assert unlimited.stop() == 0
    assert '"malformed":' in unlimited.log  # the counts are in the broker's log


def test_junk_answers_are_bounded_by_the_junk(unlimited):
    """The rendezvous port never answers more bytes than it was sent (STUN's own rule aside)."""
    outcome = flood(unlimited.endpoint, JUNK, rate=5000, max_seconds=30, seed=7)
    stun_answered = unlimited.status()["stats"]["stun"]
    assert outcome["reply_bytes"] <= outcome["sent_bytes"]
    assert stun_answered["answered"] + stun_answered["errors"] < JUNK / 10  # mutated Binding requests, a few


def test_the_rate_limit_drops_a_flood_and_the_source_recovers(limited):
    outcome = flood(limited.endpoint, 500, rate=5000, max_seconds=10, seed=3)
    assert outcome["sent"] == 500
    dropped = limited.status()["stats"]["dropped"]
    assert dropped["rate-limited"] + dropped.get("stun-rate-limited", 0) >= 300
    time.sleep(2.5)  # 10 datagrams a second refill the bucket the peers share with the flood (127.0.0.1)
    results = punch_pair(limited.endpoint, "after-flood", limited.secret("after-flood"))
    assert all(r["ok"] for r in results.values()), results


def test_a_wrong_secret_is_refused_and_the_peer_says_why(limited):
    proc = punch_peer(limited.endpoint, "r", "a", "00" * 32, messages=1, timeout=2)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "unauthorized" in out
    assert limited.status()["stats"]["dropped"]["unauthenticated"] >= 1


def test_reach_reports_each_of_several_targets_on_its_own(unlimited):
    """One `reach` process pings several endpoints (the scenario's unsolicited control of every pair):
    the broker answers its pings, a closed port answers nothing, each under its own tag."""
    from peers.peer import reach
    from tests.helpers.loopback import HOST, free_udp_ports
    from wire.protocol import Endpoint

    closed = Endpoint(HOST, free_udp_ports(1)[0])
    out = reach([(unlimited.endpoint, "tag-broker"), (closed, "tag-closed")], attempts=2, wait=0.2)
    assert [(o["to"], o["tag"], o["sent"]) for o in out] == [
        (str(unlimited.endpoint), "tag-broker", 2), (str(closed), "tag-closed", 2)]
    assert out[0]["reached"] and out[0]["replies"] == 2
    assert not out[1]["reached"] and out[1]["replies"] == 0


def test_a_restart_forgets_the_waiting_peer_keeps_the_key_and_the_peer_registers_again(unlimited):
    """The broker-restart fault: peer a waits in the room, the service restarts (SIGHUP) with nothing
    remembered, b comes: a's next register puts it back, and the secret minted before still holds."""
    secret = unlimited.secret("restart")
    first = punch_peer(unlimited.endpoint, "restart", "a", secret, messages=2, timeout=15)
    time.sleep(1.0)
    before = unlimited.status()
    after = unlimited.status("--restart")
    assert after["pid"] == before["pid"] and after["stats"]["started"] > before["stats"]["started"]
    assert before["stats"]["rooms"] == 1 and after["stats"]["rooms"] == 0
    second = punch_peer(unlimited.endpoint, "restart", "b", secret, messages=2, timeout=15)
    results = {}
    for peer, proc in (("a", first), ("b", second)):
        out, err = proc.communicate(timeout=30)
        results[peer] = json.loads(out.strip().splitlines()[-1])
    assert all(r["ok"] for r in results.values()), results
    assert results["a"]["registers_sent"] >= 3  # before the restart, and again after it
    assert "restarting: every member and room forgotten" in unlimited.log


def test_a_partner_killed_mid_exchange_is_declared_gone_after_its_silence_not_at_the_timeout(unlimited):
    from peers.peer import PARTNER_SILENCE_S

    secret = unlimited.secret("killed")
    survivor = punch_peer(unlimited.endpoint, "killed", "a", secret, messages=3000, timeout=40)  # 30 s of data
    time.sleep(0.2)
    victim = punch_peer(unlimited.endpoint, "killed", "b", secret, messages=3000, timeout=40)
    time.sleep(2.0)
    victim.kill()
    killed_at = time.monotonic()
    out, _ = survivor.communicate(timeout=40)
    took = time.monotonic() - killed_at
    result = json.loads(out.strip().splitlines()[-1])
    assert not result["ok"] and result["error"].startswith("the partner went silent: nothing heard from it for")
    assert 0 < result["messages_received"] < 3000 and result["partner_silent_s"] >= PARTNER_SILENCE_S
    assert took < 20, took  # its silence (3 s), not the 40 s timeout: a wide margin on a busy machine
    victim.communicate()
