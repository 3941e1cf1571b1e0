"""Kernel rules for a NAT router, rendered as one nftables script (in-tree netfilter only).

Everything lives in the router's own table `ip natlab`, replaced atomically on each apply (the
script deletes and recreates the table in one transaction); Docker's iptables-nft tables in the
same namespace are never touched, and the table is not called `nat` (see nat-facts).

How each RFC 4787 axis is built:
- mapping/allocation: EIM+preserve is plain masquerade (keeps the port when free); APDM+random is
  masquerade fully-random; APDM+sequential is snat to a counter (numgen inc); EIM+random and
  ADM+random pick the port from a hash of the private endpoint (and, for ADM, of the remote
  address), so one endpoint keeps one port per remote address or for all of them.
- filtering: APDF is conntrack alone (replies only). EIF and ADF add an endpoint-independent
  mapping table learnt from outbound packets after NAT (public port -> private endpoint) and a
  prerouting dnat from the WAN through it; ADF admits only remotes the endpoint has sent to.
- hairpinning: LAN packets to the public address are dnat'ed through the same table and leave
  towards the LAN with the sender's public address and port.
- mapping timeout: one ct timeout policy for UDP (unreplied and replied alike) and the same
  timeout on the learnt tables.
- firewall: everything from the WAN that conntrack does not know, and that no cone mapping
  admitted, is dropped silently (forward and input): a reject would confirm a conntrack entry
  for the unsolicited packet, which would later collide with the peer's own flow.
"""

from __future__ import annotations

from lab.nat_presets import NatBehaviour

TABLE = "natlab"
PORT_BASE = 20000  # ports the hashed and sequential allocations draw from
PORT_SPAN = 1000


def _port_map(expr: str, seed: bool = False) -> str:
    """`expr mod N map {0: base, ...}`: the map form, since nft's `offset` came out byte-swapped."""
    elements = ", ".join(f"{i} : {PORT_BASE + i}" for i in range(PORT_SPAN))
    return f"{expr} mod {PORT_SPAN}{' seed 0x4e41' if seed else ''} map {{ {elements} }}"


def _outbound_nat(b: NatBehaviour, wan: str, wan_ip: str) -> list[str]:
    if (b.mapping, b.allocation) == ("eim", "preserve"):
        return [f'oifname "{wan}" masquerade']
    if (b.mapping, b.allocation) == ("apdm", "random"):
        return [f'oifname "{wan}" masquerade fully-random']
    if (b.mapping, b.allocation) == ("apdm", "sequential"):
        port = _port_map("numgen inc")
    elif (b.mapping, b.allocation) == ("eim", "random"):
        port = _port_map("jhash ip saddr . udp sport", seed=True)
    elif (b.mapping, b.allocation) == ("adm", "random"):
        port = _port_map("jhash ip saddr . udp sport . ip daddr", seed=True)
    else:
        raise ValueError(f"no rules for mapping={b.mapping} ports={b.allocation}")
    # Port selection is UDP's; everything else (ICMP) still leaves masqueraded.
    return [f'oifname "{wan}" meta l4proto udp snat ip to {wan_ip} : {port}', f'oifname "{wan}" masquerade']


def render(b: NatBehaviour, wan: str, lan: str, wan_ip: str, firewall: bool = True) -> str:
    timeout = b.udp_timeout_s
    cone = b.filtering in ("eif", "adf") or b.hairpinning
    lines = [
        f"table ip {TABLE}",
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
        "  ct timeout udp-mapping {",
        "    protocol udp; l3proto ip",
        f"    policy = {{ unreplied : {timeout}, replied : {timeout} }}",
        "  }",
        "  chain timeouts {",
        "    type filter hook prerouting priority -150; policy accept;",
        '    meta l4proto udp ct state new ct timeout set "udp-mapping"',
        "  }",
    ]
    if cone:
        lines += [
            "  map cone {",
            "    type inet_service : ipv4_addr . inet_service",
            f"    flags dynamic, timeout; timeout {timeout}s",
            "  }",
            "  map cone_rev {",
            "    type ipv4_addr . inet_service : inet_service",
            f"    flags dynamic, timeout; timeout {timeout}s",
            "  }",
            "  set cone_remotes {",
            "    type inet_service . ipv4_addr",
            f"    flags dynamic, timeout; timeout {timeout}s",
            "  }",
        ]
    lines += ["  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;"]
    if b.filtering == "eif":
        lines.append(f'    iifname "{wan}" udp dport @cone dnat ip to udp dport map @cone')
    elif b.filtering == "adf":
        lines.append(f'    iifname "{wan}" udp dport . ip saddr @cone_remotes dnat ip to udp dport map @cone')
    if b.hairpinning:
        lines.append(f'    iifname "{lan}" ip daddr {wan_ip} udp dport @cone dnat ip to udp dport map @cone')
    lines += ["  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;"]
    if b.hairpinning:
        lines.append(
            f'    iifname "{lan}" oifname "{lan}" ct status dnat meta l4proto udp '
            f"snat ip to {wan_ip} : ip saddr . udp sport map @cone_rev"
        )
        # A sender with no mapping yet still must not arrive with its private address: the
        # receiving host would drop a packet from its own LAN address as a martian.
        lines.append(f'    iifname "{lan}" oifname "{lan}" ct status dnat snat ip to {wan_ip}')
    lines += [f"    {rule}" for rule in _outbound_nat(b, wan, wan_ip)]
    lines.append("  }")
    if cone:
        lines += [
            "  chain learn {",
            "    type filter hook postrouting priority srcnat + 10; policy accept;",
            f'    oifname "{wan}" meta l4proto udp update @cone '
            "{ udp sport : ct original ip saddr . ct original proto-src }",
            f'    oifname "{wan}" meta l4proto udp update @cone_rev '
            "{ ct original ip saddr . ct original proto-src : udp sport }",
            f'    oifname "{wan}" meta l4proto udp update @cone_remotes {{ udp sport . ip daddr }}',
            "  }",
        ]
    for hook in ("forward", "input"):
        lines += [f"  chain {hook} {{", f"    type filter hook {hook} priority filter; policy accept;"]
        if firewall:
            lines.append(f'    iifname "{wan}" ct state established,related accept')
            if hook == "forward" and b.filtering in ("eif", "adf"):
                lines.append(f'    iifname "{wan}" ct status dnat accept')
            lines.append(f'    iifname "{wan}" drop')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
