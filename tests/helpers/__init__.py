"""Helpers shared by the tests (fixtures live in tests/conftest.py, markers come from the folders).

    labs           say, needs_root, lab(), punch_test_cli(), lab_namespaces(): standing a lab up, driving it
    lab_probes     what the protocol system tests read from a running lab (broker status and log, conntrack)
    loopback       the real broker as a process on 127.0.0.1, and peers punching through it
    pcap_factory   the pcaps of a punch-test run, built packet by packet with scapy
    pcaps          reading a run's pcaps back (frames per vantage, tshark's interface names)
    signed         signed protocol messages under a fixed broker key
    chat_sides     two chat sides under pseudo-terminals
    forkserver_probe  a program the fork server tests run (python3 -m tests.helpers.forkserver_probe)

ROOT is the project's root, DATA the recorded samples in tests/data, whatever depth a test sits at.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "tests" / "data"
