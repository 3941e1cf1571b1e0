"""Kernel rules for a NAT router, rendered as iptables-restore input.

All rules live in the lab's own chains (NATLAB-*), loaded with `iptables-restore --noflush`: the
chain declarations flush and refill only those chains, so re-applying is atomic and idempotent and
leaves the rest of the node's tables (Docker's DNS rules) alone.
"""

from __future__ import annotations

from lab.nat_presets import PRESETS, validate_preset

CHAINS = {"nat": ("POSTROUTING",), "filter": ("FORWARD", "INPUT")}


def chain_name(builtin: str) -> str:
    return f"NATLAB-{builtin}"


def render(preset: str, wan: str, lan: str, firewall: bool = True) -> str:
    """iptables-restore text that gives the router the preset's behaviour.

    The firewall silently drops everything from the WAN that conntrack does not already know
    (new and invalid), in both the forward and input hooks. Dropping, not rejecting: a reject
    would confirm a conntrack entry for the unsolicited packet, and that entry would later
    collide with the peer's own outbound flow and push the NAT onto another port.
    """
    behaviour = PRESETS[validate_preset(preset)]
    if (behaviour.mapping, behaviour.filtering, behaviour.allocation) != ("eim", "apdf", "preserve"):
        raise NotImplementedError(f"no rules for {preset} yet")
    lines = ["*nat", f":{chain_name('POSTROUTING')} - [0:0]"]
    lines.append(f"-A {chain_name('POSTROUTING')} -o {wan} -j MASQUERADE")
    lines += ["COMMIT", "*filter", f":{chain_name('FORWARD')} - [0:0]", f":{chain_name('INPUT')} - [0:0]"]
    if firewall:
        for hook in ("FORWARD", "INPUT"):
            chain = chain_name(hook)
            lines.append(f"-A {chain} -i {wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
            lines.append(f"-A {chain} -i {wan} -j DROP")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def hook_rules() -> list[tuple[str, str, str]]:
    """(table, builtin chain, jump target) for each jump that routes a hook into the lab's chain."""
    return [(table, hook, chain_name(hook)) for table, hooks in CHAINS.items() for hook in hooks]
