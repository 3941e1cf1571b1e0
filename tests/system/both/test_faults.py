"""System tests: faults injected into a real punch test, each ending with a verdict that explains it.

The broker restarted between the two registrations (the peers register again and punch); a NAT
that rebinds mid-exchange (the peers meet again through the broker and finish); a peer killed
mid-exchange (its partner says it went silent, long before its timeout); the disk full
while the run is written (a one-line error, nothing left half-written, the lab taken down).
Needs root.
"""

from __future__ import annotations

import json
import subprocess

from lab.analysis.verdict import analyse_run
from lab.experiment.nat_control import live_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.run_format import FAULT_BROKER_RESTART, FAULT_PEER_KILLED, FAULT_REBINDING, RUN_RECORD
from tests.helpers.labs import leftovers, needs_root, punch_test_cli, say

pytestmark = [needs_root]


def live_setting(engine, router: str) -> str:
    return live_nat(engine, router)["nat"]


def test_a_broker_restart_between_the_registrations_is_survived_and_shown(engine, tmp_path):
    run_dir = run_punch_test(engine, PunchTestConfig(messages=5, fault=FAULT_BROKER_RESTART), tmp_path, say)
    verdict = analyse_run(run_dir)
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    fault = verdict.check("8")
    assert fault.detail.startswith("the broker restarted at +") and "it registered again" in fault.detail
    peers = json.loads((run_dir / RUN_RECORD).read_text())["peers"]
    assert peers["a"]["ok"] and peers["b"]["ok"] and peers["a"]["registers_sent"] > peers["b"]["registers_sent"]


def test_a_nat_rebinding_mid_exchange_is_noticed_and_the_peers_meet_again(engine, tmp_path):
    run_dir = run_punch_test(engine, PunchTestConfig(messages=1000, timeout_s=30, fault=FAULT_REBINDING), tmp_path, say)
    record = json.loads((run_dir / RUN_RECORD).read_text())
    a, b = record["peers"]["a"], record["peers"]["b"]
    assert a["ok"] and b["ok"], (a.get("error"), b.get("error"))
    (moved,) = a["reintroductions"][-1:]
    assert moved["you"] == a["public"] and b["partner_public"] == moved["you"]  # b was told where a is now
    verdict = analyse_run(run_dir)
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    old_port, new_port = (verdict.check("8").detail.split(" became ")[i].rsplit(":", 1)[1].split(";")[0] for i in (0, 1))
    assert old_port != new_port and new_port == a["public"].rsplit(":", 1)[1]
    assert live_setting(engine, "router-a") == record["fault"]["routers"]["router-a"]  # put back after the run


def test_a_peer_killed_mid_exchange_is_declared_gone_by_its_partner(engine, tmp_path):
    config = PunchTestConfig(messages=1000, timeout_s=30, fault=FAULT_PEER_KILLED)
    run_dir = run_punch_test(engine, config, tmp_path, say)
    record = json.loads((run_dir / RUN_RECORD).read_text())
    survivor = record["peers"]["a"]
    assert record["peers"]["b"]["killed"] and record["fault"]["killed"] == ["b"]
    assert not survivor["ok"] and survivor["error"].startswith("the partner went silent")
    assert record["finished"] - record["fault"]["back"] < config.timeout_s / 2  # its silence ended it, not its timeout
    verdict = analyse_run(run_dir)
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    assert verdict.check("3").detail.startswith("direct until the fault cut the exchange")
    assert verdict.check("8").detail.startswith("peer b killed at +") and "the partner went silent" in verdict.check("8").detail


def test_a_full_disk_stops_the_run_with_one_line_and_leaves_nothing_half_written(engine, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "natlab-test-full", str(small)], check=True)
    try:
        proc, _ = punch_test_cli(small, engine)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert last.startswith("natlab: error: no space left") and str(small) in last, last
        assert last.endswith("the lab is down (`make lab-up` to start it again)"), last
        assert sorted(p.name for p in small.iterdir()) == [], "a half-written run was left behind"
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert not engine.is_up() and leftovers(engine) == [], "the lab was not taken down whole"
    engine.up(say)
    run_dir = run_punch_test(engine, PunchTestConfig(messages=3), tmp_path / "after", say)
    assert analyse_run(run_dir).ok  # up again, the lab is as new
