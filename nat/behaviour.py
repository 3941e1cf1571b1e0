"""NAT behaviours a router can take, on the axes of RFC 4787, by preset name or axis by axis.

A router's NAT setting is one string: a preset name, axes, or a preset with axes overriding it:

    port-restricted
    symmetric
    mapping=eim,filtering=adf,ports=preserve,hairpin=on,timeout=20
    full-cone,hairpin=on,timeout=10

parse_nat() turns it into a NatBehaviour or fails with what is valid, before anything starts.
The router program (nat/router.py) turns a NatBehaviour into kernel rules (nat/rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network

from node.setting_text import split_setting

MAPPINGS = {"eim": "endpoint-independent", "adm": "address-dependent", "apdm": "address-and-port-dependent"}
FILTERINGS = {"eif": "endpoint-independent", "adf": "address-dependent", "apdf": "address-and-port-dependent"}
ALLOCATIONS = ("preserve", "sequential", "random", "block")
# Port allocation each mapping can have here. Preserving the port is only possible when one public
# port serves every remote (EIM); a sequential counter only makes sense per new mapping of a flow; a
# block of ports per LAN address (what carrier-grade NATs do, RFC 6888 REQ-14) is kept per endpoint (EIM).
ALLOWED_ALLOCATIONS = {"eim": ("preserve", "random", "block"), "adm": ("random",), "apdm": ("random", "sequential")}
BLOCK_BASE, BLOCK_MAX = 1024, 4096  # port blocks start above the well-known ports; no block is wider than this
TIMEOUT_RANGE = (1, 3600)
AXES_HELP = ("mapping=eim|adm|apdm,filtering=eif|adf|apdf,ports=preserve|sequential|random|block,hairpin=on|off,"
             "timeout=SECONDS")


@dataclass(frozen=True)
class NatBehaviour:
    mapping: str
    filtering: str
    allocation: str
    hairpinning: bool = False
    udp_timeout_s: int = 30

    def describe(self) -> str:
        return (
            f"mapping={self.mapping} filtering={self.filtering} ports={self.allocation} "
            f"hairpin={'on' if self.hairpinning else 'off'} timeout={self.udp_timeout_s}s"
        )

    def spec(self) -> str:
        """The axes as a NAT setting string that parses back to this behaviour."""
        return self.describe().replace(" ", ",").removesuffix("s")


PRESETS: dict[str, NatBehaviour] = {
    # Plain MASQUERADE with a silently-dropping stateful firewall: what a Linux home router does.
    "port-restricted": NatBehaviour("eim", "apdf", "preserve"),
    "full-cone": NatBehaviour("eim", "eif", "preserve"),
    "restricted-cone": NatBehaviour("eim", "adf", "preserve"),
    "symmetric": NatBehaviour("apdm", "apdf", "random"),
    "symmetric-sequential": NatBehaviour("apdm", "apdf", "sequential"),
    "address-dependent": NatBehaviour("adm", "apdf", "random"),
}
DEFAULT_PRESET = "port-restricted"


class UnknownPreset(ValueError):
    """A NAT setting that names no preset, or axes that are unknown or contradict each other."""


def _axis(key: str, value: str, valid: tuple[str, ...] | dict) -> str:
    if value not in valid:
        raise UnknownPreset(f"unknown {key} {value!r}; valid: {', '.join(valid)}")
    return value


def _switch(key: str, value: str) -> bool:
    if value not in ("on", "off"):
        raise UnknownPreset(f"{key} must be on or off, not {value!r}")
    return value == "on"


def parse_nat(text: str) -> NatBehaviour:
    preset, axes = split_setting(text, "NAT", PRESETS, AXES_HELP, UnknownPreset)
    behaviour = PRESETS[preset or DEFAULT_PRESET]
    if preset is None and not any(key == "ports" for key, _ in axes):
        # Axes alone: a mapping that cannot preserve ports gets its natural allocation.
        mapping = next((value for key, value in axes if key == "mapping"), behaviour.mapping)
        if mapping in ALLOWED_ALLOCATIONS:
            behaviour = replace(behaviour, allocation=ALLOWED_ALLOCATIONS[mapping][0])
    for key, value in axes:
        if key == "mapping":
            behaviour = replace(behaviour, mapping=_axis(key, value, MAPPINGS))
        elif key == "filtering":
            behaviour = replace(behaviour, filtering=_axis(key, value, FILTERINGS))
        elif key == "ports":
            behaviour = replace(behaviour, allocation=_axis(key, value, ALLOCATIONS))
        elif key == "hairpin":
            behaviour = replace(behaviour, hairpinning=_switch(key, value))
        elif key == "timeout":
            low, high = TIMEOUT_RANGE
            if not value.isdigit() or not low <= int(value) <= high:
                raise UnknownPreset(f"timeout must be whole seconds from {low} to {high}, not {value!r}")
            behaviour = replace(behaviour, udp_timeout_s=int(value))
        else:
            raise UnknownPreset(f"unknown NAT axis {key!r}; valid: mapping, filtering, ports, hairpin, timeout")
    allowed = ALLOWED_ALLOCATIONS[behaviour.mapping]
    if behaviour.allocation not in allowed:
        raise UnknownPreset(
            f"mapping={behaviour.mapping} cannot have ports={behaviour.allocation}; it can have ports={'|'.join(allowed)}"
        )
    return behaviour


def validate_preset(text: str) -> str:
    """Return the NAT setting unchanged if it parses; otherwise fail with what is valid."""
    parse_nat(text)
    return text


def port_block(lan: IPv4Network, address: IPv4Address) -> tuple[int, int]:
    """The public ports (first, last) a `ports=block` NAT gives a LAN address: the ports above BLOCK_BASE
    shared evenly among the LAN's hosts, in address order (a /24's hosts get 253 each)."""
    hosts = lan.num_addresses - 2
    size = min(BLOCK_MAX, (65536 - BLOCK_BASE) // max(1, hosts))
    first = BLOCK_BASE + (int(address) - int(lan.network_address) - 1) * size
    return first, first + size - 1


def preset_name(behaviour: NatBehaviour) -> str | None:
    return next((name for name, b in PRESETS.items() if b == behaviour), None)
