"""Check 8, the injected fault, on built runs whose record names a fault the captures do not bear
out: the check fails, saying what the captures show instead."""

from __future__ import annotations

from lab.analysis.run import read_run
from lab.analysis.verdict import Verdict, judge
from lab.run_format import FAULT_BROKER_RESTART, FAULT_PEER_KILLED
from tests.helpers.pcap_factory import build_run, write_record
from wire.protocol import Data, Register


def judged_with(tmp_path, fault_at) -> Verdict:
    """The verdict of a built run (one register each, a whole exchange) whose record says a fault
    happened when `fault_at(view)` says."""
    topo = build_run(tmp_path).topology
    write_record(tmp_path, topo)
    run = read_run(tmp_path)
    at = fault_at(run.view)
    write_record(tmp_path, topo, fault={**at, "killed": ["b"]} if at["kind"] == FAULT_PEER_KILLED else at)
    return judge(read_run(tmp_path))


def register_time(view, label: str) -> float:
    return next(p.time for p in view.broker if isinstance(p.msg, Register) and p.msg.peer == label)


def test_a_broker_restart_the_captures_do_not_bear_out_fails_check_8(tmp_path):
    def between_the_registrations(view):
        t = (register_time(view, "a") + register_time(view, "b")) / 2
        return {"kind": FAULT_BROKER_RESTART, "at": t, "back": t + 1e-6}

    fault = judged_with(tmp_path, between_the_registrations).check("8")
    assert not fault.ok and fault.detail == "peer a did not register again after the restart"
    early = judged_with(tmp_path / "early", lambda view: {"kind": FAULT_BROKER_RESTART, "at": view.t0 - 1,
                                                          "back": view.t0 - 0.5}).check("8")
    assert "no register of peer a reached the broker before the restart" in early.detail


def test_a_kill_after_the_exchange_was_done_is_no_kill_mid_exchange(tmp_path):
    def after_the_last_data(view):
        t = max(p.time for p in view.caps["router-b-lan"] if isinstance(p.msg, Data)) + 0.5
        return {"kind": FAULT_PEER_KILLED, "at": t, "back": t + 0.01}

    verdict = judged_with(tmp_path, after_the_last_data)
    fault = verdict.check("8")
    assert not fault.ok and "peer a did not report its partner gone: it said ok" in fault.detail
    assert "peer a sent nothing after the kill: it was done already" in fault.detail
    assert verdict.check("3").detail.startswith("direct until the fault cut the exchange")
