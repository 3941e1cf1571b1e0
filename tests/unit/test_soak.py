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


BROKER, TURN = ("broker", 10, "server.broker"), ("relay", 11, "turnserver")


def proc(rss_kb: int, fds: int) -> dict:
    return {"rss_kb": rss_kb, "fds": fds}


def soak_with(series: dict, **changes) -> Soak:
    """A soak whose long-lived processes held, step after step, what `series` says: [(kB, fds), ...]."""
    soak = Soak(engine=None, minutes=1)  # type: ignore[arg-type] - findings() never reads the engine
    soak.steps = [{"step": "punch", "ok": True, "seconds": 4.0, "why": "all checks passed"}]
    soak.baseline = {key: proc(*held[0]) for key, held in series.items()}
    soak.series = {key: [(10.0 * i, kb, fds) for i, (kb, fds) in enumerate(held)] for key, held in series.items()}
    soak.last = {key: proc(*held[-1]) for key, held in series.items()}
    soak.baseline_ns = soak.last_ns = dict(NS)
    soak.before_up = soak.after_down = {"named_netns": 0, "net_namespaces": 1, "mount_namespaces": 2}
    for name, value in changes.items():
        setattr(soak, name, value)
    return soak


def test_what_rises_then_levels_off_is_bounded():
    """coturn holds a killed peer's allocation for its lifetime: its descriptors rise for ten minutes,
    then stay. Nothing in the second half passes the first half's peak: no finding."""
    series = {BROKER: [(40_000, 18), (45_000, 19), (45_000, 18), (44_000, 18)],
              TURN: [(16_000, 38), (17_000, 70), (17_500, 86), (17_500, 84), (17_500, 86), (17_500, 85)]}
    assert soak_with(series).findings() == []


def test_what_keeps_growing_is_found_and_a_gone_process_and_a_stray_too():
    series = {BROKER: [(40_000, 18), (41_000, 18), (52_000, 18), (70_000, 18)],
              TURN: [(16_000, 38), (16_000, 42), (16_000, 46), (16_000, 50)]}
    soak = soak_with(series, strays={("peer-a", 99, "peers.peer"): "step 7 (peer-killed)"})
    found = soak.findings()
    assert "broker: server.broker kept growing: 70000 kB in the second half, 41000 kB at most in the first" in found
    assert "relay: turnserver kept taking file descriptors: 50 in the second half, 42 at most in the first" in found
    assert "peer-a: peers.peer (pid 99) left running, first seen after step 7 (peer-killed)" in found
    del soak.last[TURN]
    assert "relay: turnserver (pid 11) is gone" in soak.findings()


def test_one_cycle_cannot_tell_growth_but_still_sees_a_failed_verdict_and_left_namespaces():
    soak = soak_with({BROKER: [(40_000, 18)]}, last_ns={**NS, "mount_namespaces": 16},
                     after_down={"named_netns": 1, "net_namespaces": 1, "mount_namespaces": 2})
    soak.steps.append({"step": "rebinding", "ok": False, "seconds": 9.0, "why": "check 8: no new mapping"})
    assert soak.halves(BROKER) is None
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
