"""The pcap analysis on runs the tests build: a good run passes, each fault fails its check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.analysis.packets import load_run
from lab.analysis.verdict import analyse
from lab.topology import build_topology
from tests.helpers.pcap_factory import LATE_PEER, MESSAGES, Faults, build_run


def verdict_for(tmp_path: Path, faults: Faults = Faults()):
    topo = build_run(tmp_path, faults).topology
    return analyse(load_run(tmp_path), topo, MESSAGES, LATE_PEER, "test")


def failing(verdict) -> set[str]:
    return {c.id for c in verdict.checks if not c.ok}


def test_good_run_passes_every_check(tmp_path):
    verdict = verdict_for(tmp_path)
    assert failing(verdict) == set(), [c.detail for c in verdict.checks]
    assert verdict.ok


def test_data_through_the_broker_fails_skip_server(tmp_path):
    verdict = verdict_for(tmp_path, Faults(via_broker=True))
    assert failing(verdict) == {"2"}
    assert "reached the broker" in verdict.checks[1].detail


def test_leaked_private_address_fails_nat_real(tmp_path):
    verdict = verdict_for(tmp_path, Faults(leak=True))
    assert failing(verdict) == {"4"}
    assert "10.0.1.10" in verdict.checks[3].detail


def test_one_way_flow_fails_direct_path(tmp_path):
    verdict = verdict_for(tmp_path, Faults(one_way=True))
    assert "3" in failing(verdict)
    assert "b->a" in verdict.checks[2].detail


def test_unsolicited_packet_on_the_lan_fails_the_control(tmp_path):
    verdict = verdict_for(tmp_path, Faults(firewall_off=True))
    assert failing(verdict) == {"5a"}


def test_early_probes_reaching_the_lan_fail_the_control_behind_a_filtering_nat(tmp_path):
    verdict = verdict_for(tmp_path, Faults(early_probes_in=True))
    assert failing(verdict) == {"5a"}
    assert "unsolicited partner packets reached router-b-lan" in verdict.checks[4].detail


def test_a_full_cone_nat_admits_early_probes_by_design(tmp_path):
    verdict = verdict_for(tmp_path, Faults(early_probes_in=True, nat_b="full-cone"))
    assert failing(verdict) == set()
    assert any("EIF" in e for e in verdict.checks[4].evidence)


def test_bypass_fails_the_no_bypass_control(tmp_path):
    verdict = verdict_for(tmp_path, Faults(bypass=True))
    assert failing(verdict) == {"5b"}


def test_missing_captures_fail_instead_of_passing_vacuously():
    verdict = analyse({}, build_topology(), MESSAGES, LATE_PEER)
    assert failing(verdict) == {"1", "2", "3", "4", "5a", "5b"}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_built_pcaps_open_in_tshark(tmp_path):
    build_run(tmp_path)
    for pcap in tmp_path.glob("*.pcap"):
        out = subprocess.run(["tshark", "-r", str(pcap)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_private_endpoints_in_registers_and_introductions_are_no_leak(tmp_path):
    built = build_run(tmp_path)
    carried = [s.msg for s in built.sent if s.msg.PRIVATE]
    assert {type(m).__name__ for m in carried} == {"Register", "Intro"}  # they do carry 10.x by design
    assert failing(verdict_for(tmp_path)) == set()


def test_a_private_address_elsewhere_in_a_payload_still_fails_nat_real(tmp_path):
    verdict = verdict_for(tmp_path, Faults(leak_in_payload=True))
    assert failing(verdict) == {"4"}
    assert "address in payload" in verdict.checks[3].detail


def test_refused_registrations_and_spoofed_session_traffic_leave_a_clean_verdict(tmp_path):
    verdict = verdict_for(tmp_path, Faults(attacker=True))
    assert failing(verdict) == set(), [c.detail for c in verdict.checks if not c.ok]
    assert any("4 refused, from 198.51.100.66:50001" in e for e in verdict.checks[0].evidence)


@pytest.mark.parametrize("text, leaks", [(b"to 10.0.1.100 please", False), (b"at 10.0.1.10:4000", True)])
def test_a_private_address_in_a_payload_is_matched_as_a_whole_address(tmp_path, text, leaks):
    from lab.analysis.packets import Packet

    topo = build_run(tmp_path).topology
    caps = load_run(tmp_path)
    caps["router-a-wan"].append(
        Packet("router-a-wan", caps["router-a-wan"][-1].time + 1, "", "", "198.51.100.101", "198.51.100.102", 17,
               5000, 5001, text)
    )
    nat_real = analyse(caps, topo, MESSAGES, LATE_PEER, "t").checks[3]
    assert nat_real.ok is not leaks, nat_real.detail
