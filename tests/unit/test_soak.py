"""make soak's judgement (bench/soak.py) on samples built here, and the node command it reads
processes with (node/process_stats.py) on this host."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.soak import Soak
from node.process_stats import processes
from tests.helpers import ROOT

NS = {"named_netns": 13, "net_namespaces": 14, "mount_namespaces": 15}


def proc(rss_kb: int, fds: int) -> dict:
    return {"rss_kb": rss_kb, "fds": fds}


def soak_with(last: dict, **changes) -> Soak:
    soak = Soak(engine=None, minutes=1)  # type: ignore[arg-type] - findings() never reads the engine
    soak.steps = [{"step": "punch", "ok": True, "seconds": 4.0, "why": "all checks passed"}]
    soak.baseline = {("broker", 10, "server.broker"): proc(40_000, 18), ("relay", 11, "turnserver"): proc(16_000, 40)}
    soak.baseline_ns = soak.last_ns = dict(NS)
    soak.before_up = soak.after_down = {"named_netns": 0, "net_namespaces": 1, "mount_namespaces": 2}
    soak.last = last
    for name, value in changes.items():
        setattr(soak, name, value)
    return soak


def test_a_soak_where_nothing_grew_or_leaked_finds_nothing():
    last = {("broker", 10, "server.broker"): proc(45_000, 19), ("relay", 11, "turnserver"): proc(16_000, 42)}
    assert soak_with(last).findings() == []  # within 25% and 8 MB, within 2 descriptors


def test_growth_a_descriptor_leak_a_gone_process_and_a_stray_are_each_found():
    last = {("broker", 10, "server.broker"): proc(60_000, 18)}
    soak = soak_with(last, strays={("peer-a", 99, "peers.peer"): "step 7 (peer-killed)"})
    soak.last[("relay", 11, "turnserver")] = proc(16_000, 50)
    found = soak.findings()
    assert "broker: server.broker grew from 40000 to 60000 kB" in found
    assert "relay: turnserver holds 50 file descriptors, 40 at the baseline" in found
    assert "peer-a: peers.peer (pid 99) left running, first seen after step 7 (peer-killed)" in found
    del soak.last[("relay", 11, "turnserver")]
    assert "relay: turnserver (pid 11) is gone" in soak.findings()


def test_a_failed_verdict_and_left_namespaces_fail_the_soak():
    last = {("broker", 10, "server.broker"): proc(40_000, 18), ("relay", 11, "turnserver"): proc(16_000, 40)}
    soak = soak_with(last, last_ns={**NS, "mount_namespaces": 16},
                     after_down={"named_netns": 1, "net_namespaces": 1, "mount_namespaces": 2})
    soak.steps.append({"step": "rebinding", "ok": False, "seconds": 9.0, "why": "check 8: no new mapping"})
    assert soak.findings() == ["step 2 (rebinding) failed: check 8: no new mapping",
                               "host: mount_namespaces 16, 15 at the baseline",
                               "host after lab-down: named_netns 1, 0 before lab-up"]


def test_process_stats_names_programs_and_python_modules_and_counts_what_they_hold():
    children = [subprocess.Popen(["sleep", "5"]),
                subprocess.Popen([sys.executable, "-m", "tests.helpers.forkserver_probe", "--sleep", "5"], cwd=ROOT,
                                 stdout=subprocess.DEVNULL)]
    try:
        time.sleep(0.5)
        found = {p["pid"]: p for p in processes()}
        sleep, probe = (found[c.pid] for c in children)
        assert sleep["name"] == "sleep" and probe["name"] == "tests.helpers.forkserver_probe"
        assert sleep["rss_kb"] > 0 and probe["rss_kb"] > sleep["rss_kb"] and probe["fds"] >= 3
    finally:
        for child in children:
            child.kill()
            child.wait()
