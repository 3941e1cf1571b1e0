"""Reading the outside classifiers' output (samples recorded from the real tools in the lab)."""

from __future__ import annotations

from lab.experiment.classification import (
    Classification,
    natdiscovery_complete,
    parse_natdiscovery,
    parse_stun_client,
    stun_client_complete,
)
from nat.behaviour import parse_nat
from tests.helpers import DATA


def test_natdiscovery_verdicts():
    text = (DATA / "natdiscovery-symmetric.txt").read_text()
    assert parse_natdiscovery(text) == {"mapping": "apdm", "filtering": "apdf", "hairpinning": False}
    assert natdiscovery_complete(text)


def test_a_lost_answer_makes_natdiscovery_output_incomplete():
    # natdiscovery keeps the last mapped address when test II times out and says "Independent".
    text = ("-= Mapping Behavior Discovery =-\nUDP reflexive addr: 198.51.100.101:1\nSTUN receive timeout..\n"
            "NAT with Endpoint Independent Mapping!\n")
    assert parse_natdiscovery(text)["mapping"] == "eim"
    assert not natdiscovery_complete(text)


def test_stun_client_primary_line():
    text = (DATA / "stun-client-symmetric.txt").read_text()
    found = parse_stun_client(text)
    assert (found["mapping"], found["filtering"], found["port_preserved"], found["hairpinning"]) == (
        "dependent", None, False, False)
    assert stun_client_complete(text)
    cone = parse_stun_client("Primary: Independent Mapping, Address Dependent Filter, preserves ports, will hairpin")
    assert (cone["mapping"], cone["filtering"], cone["port_preserved"], cone["hairpinning"]) == (
        "eim", "adf", True, True)
    assert not stun_client_complete("test I = 1\ntest I(2) = 0\n")


def test_comparison_names_each_disagreement():
    row = Classification(
        "router-a", "restricted-cone", parse_nat("restricted-cone"),
        own={"mapping": "eim", "filtering": "adf", "port_preserved": True, "hairpinning": False, "lifetime_s": 29.75},
        natdiscovery={"mapping": "eim", "filtering": "apdf", "hairpinning": None},
        stun_client={"mapping": "eim", "filtering": "adf", "port_preserved": False, "hairpinning": False},
    )
    row.compare(check_lifetime=True)
    assert row.disagreements == ["natdiscovery: filtering apdf != adf", "stun-client: port preserved False != True"]


def test_stun_client_cannot_tell_adm_from_apdm_and_is_not_blamed_for_it():
    row = Classification(
        "router-a", "address-dependent", parse_nat("address-dependent"),
        own={"mapping": "adm", "filtering": "apdf", "port_preserved": False, "hairpinning": False},
        natdiscovery={"mapping": "adm", "filtering": "apdf", "hairpinning": None},
        stun_client={"mapping": "dependent", "filtering": None, "port_preserved": False, "hairpinning": False},
    )
    row.compare()
    assert row.disagreements == []
