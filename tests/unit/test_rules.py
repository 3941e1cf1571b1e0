"""The router's nftables script for each behaviour (syntax is checked by nft itself when present)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from ipaddress import IPv4Address, IPv4Network

import pytest

from nat.behaviour import PRESETS, parse_nat
from nat.rules import render

WAN, LAN, WAN_IP = "eth1", "eth0", "198.51.100.101"


LAN_NET = IPv4Network("100.64.1.0/24")


def script(setting: str, firewall: bool = True) -> str:
    return render(parse_nat(setting), WAN, LAN, WAN_IP, firewall, LAN_NET)


def test_port_restricted_is_masquerade_behind_a_silent_firewall():
    text = script("port-restricted")
    assert 'oifname "eth1" masquerade\n' in text
    for hook in ("forward", "input"):
        chain = text[text.index(f"chain {hook} {{"):]
        assert chain.index("ct state established,related accept") < chain.index('iifname "eth1" drop')
    assert "reject" not in text  # a reject would confirm conntrack entries (see nat-facts)
    assert "dnat" not in text  # APDF: conntrack alone lets replies in


def test_the_table_is_replaced_atomically_and_is_not_called_nat():
    text = script("full-cone")
    assert text.startswith("table ip natlab\ndelete table ip natlab\ntable ip natlab {")
    assert "flush ruleset" not in text and "table ip nat " not in text


def test_cone_filtering_dnats_through_the_learnt_mapping():
    eif, adf = script("full-cone"), script("restricted-cone")
    assert 'iifname "eth1" udp dport @cone dnat ip to udp dport map @cone' in eif
    assert "udp dport . ip saddr @cone_remotes dnat" in adf
    for text in (eif, adf):
        assert "update @cone { udp sport : ct original ip saddr . ct original proto-src }" in text
        assert 'iifname "eth1" ct status dnat accept' in text  # the firewall lets the cone through


@pytest.mark.parametrize(
    "setting, rule",
    [
        ("symmetric", "masquerade fully-random"),
        ("symmetric-sequential", "numgen inc mod 1000 map { 0 : 20000, 1 : 20001,"),
        ("address-dependent", "snat ip to 198.51.100.101 : ip saddr . udp sport . ip daddr map @adm_ports"),
        ("mapping=eim,ports=random", "snat ip to 198.51.100.101 : ip saddr . udp sport map @cone_rev"),
    ],
)
def test_mapping_and_allocation(setting, rule):
    assert rule in script(setting)


def test_timeout_applies_to_conntrack_and_to_the_learnt_tables():
    text = script("full-cone,timeout=7")
    assert "policy = { unreplied : 7, replied : 7 }" in text
    assert text.count("timeout 7s") == 4


def test_random_ports_that_stay_put_fall_back_to_a_random_first_port():
    for setting in ("address-dependent", "mapping=eim,ports=random"):
        text = script(setting)
        assert text.index("map @") < text.index("masquerade fully-random")


def test_only_flows_the_lan_started_are_learnt():
    learn = script("full-cone").split("chain learn {")[1]
    assert all("ct direction original" in line for line in learn.splitlines() if "update @" in line)


def test_hairpinning_sends_lan_packets_for_the_public_address_back_in():
    on, off = script("port-restricted,hairpin=on"), script("port-restricted")
    assert 'iifname "eth0" ip daddr 198.51.100.101 udp dport @cone dnat' in on
    assert "snat ip to 198.51.100.101 : ip saddr . udp sport map @cone_rev" in on
    assert "198.51.100.101 udp dport" not in off


def test_firewall_off_keeps_the_nat_and_drops_nothing():
    text = script("port-restricted", firewall=False)
    assert "masquerade" in text and "drop" not in text


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"), reason="needs root and nft")
@pytest.mark.parametrize("setting", [*PRESETS, "full-cone,hairpin=on,timeout=5", "mapping=eim,ports=random",
                                     "full-cone,ports=block,hairpin=on"])
def test_nft_accepts_every_script(setting):
    """`nft -c` checks the script against the kernel, in a scratch namespace."""
    ns = f"natlab-rulecheck-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-c", "-f", "-"], input=script(setting),
                              text=True, capture_output=True)
        assert proc.returncode == 0, proc.stderr[:500]
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_a_port_block_nat_gives_each_lan_address_a_block_of_its_own_and_keeps_it_per_endpoint():
    from nat.behaviour import port_block

    text = script("full-cone,ports=block")
    first, last = port_block(LAN_NET, IPv4Address("100.64.1.101"))
    assert (first, last) == (1024 + 100 * 253, 1024 + 101 * 253 - 1)
    assert f'oifname "eth1" ip saddr 100.64.1.101 meta l4proto udp snat ip to {WAN_IP} : {first}-{last}' in text
    # An endpoint's later flows reuse its first port (EIM) before any block rule draws another.
    assert text.index("map @cone_rev") < text.index("ip saddr 100.64.1.1 meta")
    blocks = [port_block(LAN_NET, h) for h in LAN_NET.hosts()]
    assert all(a[1] < b[0] for a, b in zip(blocks, blocks[1:])) and blocks[-1][1] <= 65535
    with pytest.raises(ValueError, match="LAN subnet"):
        render(parse_nat("full-cone,ports=block"), WAN, LAN, WAN_IP)
