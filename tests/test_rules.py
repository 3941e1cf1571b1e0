"""The router's rules as iptables-restore input."""

from __future__ import annotations

import pytest

from lab.nat_presets import UnknownPreset
from nat.rules import hook_rules, render


def test_port_restricted_masquerades_on_the_wan_and_drops_the_unsolicited():
    text = render("port-restricted", "eth1", "eth0")
    assert "-A NATLAB-POSTROUTING -o eth1 -j MASQUERADE" in text
    for chain in ("NATLAB-FORWARD", "NATLAB-INPUT"):
        accept = f"-A {chain} -i eth1 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
        drop = f"-A {chain} -i eth1 -j DROP"
        assert text.index(accept) < text.index(drop)
    assert "REJECT" not in text  # a reject would confirm conntrack entries (see nat-facts)
    assert text.count("COMMIT") == 2


def test_firewall_off_keeps_the_nat_and_empties_the_filter_chains():
    text = render("port-restricted", "eth1", "eth0", firewall=False)
    assert "MASQUERADE" in text
    assert "DROP" not in text
    assert ":NATLAB-FORWARD - [0:0]" in text  # still declared, so a re-apply flushes it


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UnknownPreset, match="valid presets: port-restricted"):
        render("no-such-nat", "eth1", "eth0")


def test_every_hook_jumps_into_its_own_chain():
    assert set(hook_rules()) == {
        ("nat", "POSTROUTING", "NATLAB-POSTROUTING"),
        ("filter", "FORWARD", "NATLAB-FORWARD"),
        ("filter", "INPUT", "NATLAB-INPUT"),
    }
