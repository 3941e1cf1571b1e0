"""NAT behaviours a router can take, named by preset, described on the axes of RFC 4787.

The router program (nat/router.py) turns a preset into kernel rules; the topology only names it.
Adding a behaviour means adding a preset here and its rules in nat/rules.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NatBehaviour:
    mapping: str  # eim | adm | apdm
    filtering: str  # eif | adf | apdf
    allocation: str  # preserve | sequential | random
    hairpinning: bool
    udp_timeout_s: int

    def describe(self) -> str:
        return (
            f"mapping={self.mapping} filtering={self.filtering} ports={self.allocation} "
            f"hairpin={'on' if self.hairpinning else 'off'} udp-timeout={self.udp_timeout_s}s"
        )


# Plain MASQUERADE with a silently-dropping stateful firewall: what a Linux home router does.
PRESETS: dict[str, NatBehaviour] = {
    "port-restricted": NatBehaviour("eim", "apdf", "preserve", hairpinning=False, udp_timeout_s=30),
}
DEFAULT_PRESET = "port-restricted"


class UnknownPreset(ValueError):
    pass


def validate_preset(name: str) -> str:
    """Return the name if it is a preset; otherwise fail with the list of valid ones."""
    if name not in PRESETS:
        valid = ", ".join(sorted(PRESETS))
        raise UnknownPreset(f"unknown NAT preset {name!r}; valid presets: {valid}")
    return name
