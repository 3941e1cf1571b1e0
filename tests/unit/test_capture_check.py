"""Check 0, the captures' completeness, on built runs (the agents' accounts and markers spoiled on
purpose); the marker codec; and the agent's tap on a real interface (its markers, the kernel's count)."""

from __future__ import annotations

import json
import socket

from lab.analysis.run import read_run
from lab.analysis.verdict import PASS_ON_ABSENCE, judge
from lab.report.terminal import verdict_summary
from lab.run_format import CAPTURE_STATS
from tests.helpers.labs import needs_root
from tests.helpers.pcap_factory import Faults, build_run, write_record
from wire.capture_marker import END, START, marker_frame, parse_marker


def verdict_of(tmp_path, **spoiled):
    topo = build_run(tmp_path, **spoiled).topology
    write_record(tmp_path, topo)
    return judge(read_run(tmp_path))


def test_whole_captures_pass_check_0_first_and_the_verdict_keeps_their_drop_counts(tmp_path):
    verdict = verdict_of(tmp_path)
    assert verdict.ok and verdict.checks[0].id == "0" and verdict.check("0").detail.startswith("all 7 captures whole")
    assert verdict.to_json()["captures"]["router-a-wan"] == {"frames": verdict.captures["router-a-wan"]["frames"],
                                                             "kernel_drops": 0, "complete": True}


def test_kernel_drops_fail_check_0_and_make_every_check_that_passes_on_absence_inconclusive(tmp_path):
    verdict = verdict_of(tmp_path, drops={"broker-wan": 3})
    zero = verdict.check("0")
    assert not zero.ok and "broker-wan: " in zero.detail and "the kernel dropped 3 of its" in zero.detail
    unsure = {c.id for c in verdict.checks if c.inconclusive}
    assert unsure == set(PASS_ON_ABSENCE) - {"7", "8"}  # no relay, no fault in this run: no check 7 or 8
    assert all(c.status == "INCONCLUSIVE" and "check 0: broker-wan" in c.detail for c in verdict.checks if c.inconclusive)
    assert verdict.check("1").status == "PASS"  # what was seen stays seen
    assert not verdict.ok and verdict_summary(verdict) == "1 check(s) FAILED, 4 inconclusive"
    assert verdict.captures["broker-wan"]["kernel_drops"] == 3


def test_a_check_that_fails_beside_an_incomplete_capture_names_it_with_its_failure(tmp_path):
    verdict = verdict_of(tmp_path, faults=Faults(early_probes_in=True), drops={"router-b-wan": 1})
    unsolicited = verdict.check("5a")
    assert unsolicited.status == "FAIL" and "unsolicited partner packets reached router-b-lan" in unsolicited.detail
    assert unsolicited.detail.endswith("(with 1 capture(s) incomplete, check 0: router-b-wan)")
    assert verdict_of(tmp_path / "whole", faults=Faults(early_probes_in=True)).check("5a").detail.endswith("-lan")


def test_a_capture_without_its_end_marker_was_not_live_to_the_end(tmp_path):
    zero = verdict_of(tmp_path, unmarked={"router-b-lan": END}).check("0")
    assert not zero.ok and "router-b-lan: " in zero.detail and "no end marker" in zero.detail
    zero = verdict_of(tmp_path / "s", unmarked={"router-a-lan": START}).check("0")
    assert "no start marker" in zero.detail


def test_a_pcap_short_of_what_its_agent_wrote_or_a_run_without_accounts_is_incomplete(tmp_path):
    build_run(tmp_path)
    write_record(tmp_path, build_run(tmp_path).topology)
    accounts = json.loads((tmp_path / CAPTURE_STATS).read_text())
    accounts["vantages"]["router-a-wan"]["written"] += 2
    (tmp_path / CAPTURE_STATS).write_text(json.dumps(accounts))
    zero = judge(read_run(tmp_path)).check("0")
    assert not zero.ok and "router-a-wan: " in zero.detail and "the file holds" in zero.detail
    (tmp_path / CAPTURE_STATS).write_text('["not", "an", "account"]')
    assert "is not a capture account" in judge(read_run(tmp_path)).check("0").detail
    (tmp_path / CAPTURE_STATS).unlink()
    zero = judge(read_run(tmp_path)).check("0")
    assert not zero.ok and zero.detail.startswith(f"7/7 captures incomplete (no {CAPTURE_STATS} (a run from before")


def test_a_marker_reads_back_and_nothing_else_reads_as_one():
    mac = bytes.fromhex("020000000001")
    frame = marker_frame(START, "router-a-wan", mac)
    assert parse_marker(frame + b"\x00" * 8) == (START, "router-a-wan")  # padded to Ethernet's minimum
    assert frame[:12] == mac + mac and parse_marker(mac + mac + b"\x08\x00" + frame[14:]) is None


@needs_root
def test_the_agent_sees_its_own_markers_with_kernel_timestamps_and_counts_what_the_kernel_dropped():
    import time

    from node.capture_agent import Readable, Tap, Vantage, open_taps, record

    class Sink:
        def __init__(self):
            self.times = []

        def write_packet(self, frame, sec, usec):
            self.times.append(sec + usec / 1e9)

    (tap,) = open_taps([Vantage("lo-test", "lo")])
    try:
        assert isinstance(tap, Tap) and isinstance(tap.listen, socket.socket)
        tap.writer = Sink()
        sent = time.time()
        tap.mark(START)
        readable, deadline = Readable([tap]), time.monotonic() + 2
        while START not in tap.markers and time.monotonic() < deadline:
            for ready in readable(0.1):
                record(ready)
        assert START in tap.markers
        assert abs(tap.writer.times[0] - sent) < 1.0  # the kernel's clock, to the nanosecond field
        stats = tap.stats()
        assert stats["written"] >= 1 and stats["kernel_drops"] == 0 and stats["kernel_packets"] >= stats["written"]
    finally:
        tap.listen.close()
        tap.sender.close()
