"""NAT settings: presets, axes, and the errors that list what is valid."""

from __future__ import annotations

import pytest

from nat.behaviour import PRESETS, NatBehaviour, UnknownPreset, parse_nat


def test_presets():
    assert parse_nat("port-restricted") == NatBehaviour("eim", "apdf", "preserve", False, 30)
    assert parse_nat("full-cone").filtering == "eif"
    assert parse_nat("restricted-cone").filtering == "adf"
    assert parse_nat("symmetric") == NatBehaviour("apdm", "apdf", "random", False, 30)
    assert parse_nat("symmetric-sequential").allocation == "sequential"
    assert parse_nat("address-dependent").mapping == "adm"


def test_axes_alone_and_over_a_preset():
    assert parse_nat("mapping=eim,filtering=adf,ports=preserve,hairpin=on,timeout=20") == NatBehaviour(
        "eim", "adf", "preserve", True, 20
    )
    assert parse_nat("full-cone,hairpin=on,timeout=10") == NatBehaviour("eim", "eif", "preserve", True, 10)
    assert parse_nat("mapping=apdm").allocation == "random"  # its natural allocation


@pytest.mark.parametrize("name", PRESETS)
def test_spec_round_trips(name):
    assert parse_nat(parse_nat(name).spec()) == parse_nat(name)


@pytest.mark.parametrize(
    "text, message",
    [
        ("full-moon", "valid presets: port-restricted, full-cone"),
        ("mapping=xyz", "unknown mapping 'xyz'; valid: eim, adm, apdm"),
        ("filtering=open", "valid: eif, adf, apdf"),
        ("ports=lucky", "valid: preserve, sequential, random"),
        ("hairpin=maybe", "on or off"),
        ("timeout=0", "from 1 to 3600"),
        ("timeout=ten", "from 1 to 3600"),
        ("colour=red", "valid: mapping, filtering, ports, hairpin, timeout"),
        ("mapping=apdm,ports=preserve", "cannot have ports=preserve; it can have ports=random|sequential"),
        ("symmetric,ports=preserve", "cannot have ports=preserve"),
        ("mapping=eim,full-cone", "a preset name may only come first"),
        ("", "empty NAT setting"),
    ],
)
def test_bad_settings_say_what_is_valid(text, message):
    with pytest.raises(UnknownPreset, match=message.replace("|", r"\|")):
        parse_nat(text)
