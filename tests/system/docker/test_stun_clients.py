"""System test: standard STUN clients, run inside peer-a, see router-a's public address at the broker.

Marker: docker (root). Written to be run on the real lab; see docs/protocol.md for what it covers.
"""

from __future__ import annotations

import re

from tests.helpers.labs import needs_root

pytestmark = [needs_root]

ADDRESS = r"(\d+\.\d+\.\d+\.\d+):(\d+)"


def test_turnutils_stunclient_reports_router_a_as_the_public_address(engine):
    pair = engine.topology.pair("a")
    # It prints the reflexive address from its first answer, then waits for an RFC 5780 follow-up
    # that a port-restricted NAT never lets in: bound by timeout, line-buffered so nothing is lost.
    res = engine.exec(pair.peer.name, ["timeout", "10", "stdbuf", "-oL", "-eL", "turnutils_stunclient",
                                       str(engine.topology.broker.address)])
    found = re.findall(rf"UDP reflexive addr: {ADDRESS}", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    assert {ip for ip, _ in found} == {str(pair.public_ip)}, found


def test_stun_client_reports_router_a_as_the_public_address(engine):
    pair = engine.topology.pair("a")
    res = engine.exec(pair.peer.name, ["timeout", "60", "stun", "-v", str(engine.topology.broker.address)])
    found = re.findall(rf"MappedAddress = {ADDRESS}", res.stdout + res.stderr)
    assert found, res.stdout + res.stderr
    assert {ip for ip, _ in found} == {str(pair.public_ip)}, found
    assert "Primary:" in res.stdout  # and it still classifies the NAT
