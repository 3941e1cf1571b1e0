"""System test: the outsider floods the broker with junk while the two peers rendezvous and punch.

At least 100,000 junk and mutated datagrams from the outsider (198.51.100.66, a WAN host) to the
broker's primary and alternate ports, bounded in count and time (peers.flood). Meanwhile the
peers of the lab rendezvous and punch (lab.experiment.punch_test.punch, as the punch test does): they must
succeed; the broker's memory stays bounded (VmRSS/VmHWM from /proc on its node, reported); its
counters and its log say what it dropped and why. Marker: docker (root).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from lab.engines import node_commands
from lab.experiment.punch_test import PunchTestConfig, punch
from tests.helpers.lab_probes import broker_log, broker_status, dropped_delta
from tests.helpers.labs import needs_root

pytestmark = [needs_root]

JUNK = 100_000
RATE = 10_000  # datagrams a second: ten seconds of flood
MEMORY_GROWTH_KB = 30_000  # what the broker may grow by under the flood: its tables are bounded


def test_a_junk_flood_does_not_stop_a_rendezvous(engine, record_property):
    topo = engine.topology
    broker = f"{topo.broker.address}:{topo.broker_port}"
    before = broker_status(engine)
    flood = node_commands.flood(broker, topo.broker_alt_port, JUNK, RATE, 120)
    with ThreadPoolExecutor(1) as pool:
        flooding = pool.submit(flood.run, engine, topo.outsider.name)
        time.sleep(2)  # the flood is in full swing before the peers start
        results = punch(engine, PunchTestConfig(messages=10, punch_delay_s=0.5, timeout_s=30),
                        f"flood-{time.time_ns()}", broker)
        still_flooding = not flooding.done()
        outcome = flooding.result()
    after = broker_status(engine)

    assert outcome["sent"] >= JUNK, outcome
    assert still_flooding, "the punch did not overlap the flood: nothing was shown"
    for label, result in results.items():
        assert result["ok"], (label, result)
    grown = after["VmHWM"] - before["VmRSS"]
    figure = f"broker VmRSS {before['VmRSS']} -> {after['VmRSS']} kB, VmHWM {after['VmHWM']} kB under the flood"
    print(figure, file=sys.stderr)
    record_property("broker_memory", figure)
    assert grown < MEMORY_GROWTH_KB, figure
    seen = after["stats"]["datagrams"] - before["stats"]["datagrams"]
    dropped = dropped_delta(before, after)
    record_property("broker_dropped", json.dumps(dropped))
    assert seen >= JUNK * 0.9, (seen, outcome)  # the kernel may lose a few under load, not many
    assert sum(dropped.values()) >= JUNK * 0.9 - 1000, dropped  # nearly all of it: junk is not served
    assert dropped.get("rate-limited", 0) > 0 and dropped.get("oversize", 0) > 0, dropped
    assert outcome["reply_bytes"] <= outcome["sent_bytes"], outcome  # no amplification towards the outsider
    log = broker_log(engine)
    if log is not None:
        last = [line for line in log.splitlines() if " stats {" in line][-1]
        assert '"rate-limited":' in last and '"oversize":' in last, last
