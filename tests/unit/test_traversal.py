"""The theory the path verdict compares with: which NAT pairs the lab's peer punches directly."""

from __future__ import annotations

import pytest

from nat.behaviour import PRESETS, parse_nat
from nat.traversal import direct_possible

EASY = ("full-cone", "restricted-cone")  # filter by address at most: anyone they answered may come in
HARD = ("symmetric", "symmetric-sequential", "address-dependent")  # a new port per destination


@pytest.mark.parametrize("a", PRESETS)
@pytest.mark.parametrize("b", PRESETS)
def test_the_classic_table(a, b):
    """RFC 4787's classic result (Tailscale's "how NAT traversal works"), for a peer that does not predict
    ports: a direct path unless one side maps per destination and the other filters by port, or both map
    per destination."""
    hard_a, hard_b = a in HARD, b in HARD
    expected = (not hard_a and not hard_b) or (hard_a and b in EASY) or (hard_b and a in EASY)
    assert direct_possible(PRESETS[a], PRESETS[b], predicting=False).direct is expected


PREDICTABLE = "symmetric-sequential"  # maps per destination, ports handed out in order


@pytest.mark.parametrize("a", PRESETS)
@pytest.mark.parametrize("b", PRESETS)
def test_port_prediction_opens_what_a_sequential_nat_closed_and_nothing_else(a, b):
    """With prediction a sequential symmetric NAT is as good as an endpoint-independent one, against any NAT
    that maps endpoint-independently or is sequential too (their probes, in the same order, meet); a random
    one stays closed."""
    plain, predicting = (direct_possible(PRESETS[a], PRESETS[b], predicting=p) for p in (False, True))
    random_hard = {a, b} & (set(HARD) - {PREDICTABLE})
    opened = not plain.direct and not random_hard
    assert predicting.direct is (plain.direct or opened)
    assert ("by port prediction" in predicting.reason) is opened


def test_the_reason_names_the_behaviours_that_block():
    blocked = direct_possible(PRESETS["symmetric"], PRESETS["port-restricted"])
    assert not blocked.direct
    assert "a's NAT maps per destination (apdm) and b's filters by address-and-port" in blocked.reason
    assert "b aims at the port a's NAT mapped for the broker (apdm), filtered by address-and-port" in blocked.reason
    assert direct_possible(PRESETS["port-restricted"], PRESETS["port-restricted"]).reason == \
        "a direct path opens (a's NAT eim/apdf, b's eim/apdf)"


def test_which_side_starts_late_does_not_change_the_answer():
    for a in PRESETS.values():
        for b in PRESETS.values():
            assert direct_possible(a, b, late="a").direct == direct_possible(a, b, late="b").direct


def test_axes_count_not_preset_names():
    # address-dependent mapping that filters only by address still lets a restricted cone in
    assert direct_possible(parse_nat("mapping=adm,filtering=adf"), PRESETS["restricted-cone"]).direct
    assert not direct_possible(parse_nat("mapping=apdm,filtering=apdf"), PRESETS["port-restricted"]).direct
