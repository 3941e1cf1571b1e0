"""Kernel rules for a NAT router, rendered as one nftables script (in-tree netfilter only).

Everything lives in the router's own table `ip natlab`, replaced atomically on each apply (the
script deletes and recreates the table in one transaction); Docker's iptables-nft tables in the
same namespace are never touched, and the table is not called `nat` (see nat-facts).

How each RFC 4787 axis is built:
- mapping/allocation: EIM+block gives each LAN address its own range of ports (port_block), the first
  flow's port drawn from it and reused for the endpoint's later flows as EIM+random does; EIM+preserve is plain masquerade (keeps the port when free); APDM+random is
  masquerade fully-random; APDM+sequential is snat to a counter (numgen inc); EIM+random and
  ADM+random take a random port for an endpoint's first flow and reuse it, from a learnt map,
  for its later flows (to any remote, or to the same remote address).
- filtering: APDF is conntrack alone (replies only). EIF and ADF add an endpoint-independent
  mapping table learnt from outbound packets after NAT (public port -> private endpoint) and a
  prerouting dnat from the WAN through it; ADF admits only remotes the endpoint has sent to.
- hairpinning: LAN packets to the public address are dnat'ed through the same table and leave
  towards the LAN with the sender's public address and port.
- mapping timeout: one ct timeout policy for UDP (unreplied and replied alike) and the same
  timeout on the learnt tables.
- firewall: everything from the WAN that conntrack does not know, and that no cone mapping
  admitted, is dropped silently (before routing, and again in forward and input): a reject would confirm a conntrack entry
  for the unsolicited packet, which would later collide with the peer's own flow.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from nat.behaviour import NatBehaviour, port_block

TABLE = "natlab"
SEQUENTIAL_BASE = 20000  # the sequential allocation counts from here
SEQUENTIAL_SPAN = 1000


def _outbound_nat(b: NatBehaviour, wan: str, wan_ip: str, lan_net: IPv4Network | None = None) -> list[str]:
    """postrouting rules that pick the public port: the mapping and allocation axes."""
    out = f'oifname "{wan}"'
    if b.allocation == "block":  # EIM within each LAN address's own block of ports
        if lan_net is None:
            raise ValueError("ports=block needs the router's LAN subnet")
        blocks = [f"{out} ip saddr {host} meta l4proto udp snat ip to {wan_ip} : {'-'.join(map(str, port_block(lan_net, host)))}"
                  for host in lan_net.hosts()]
        return [f"{out} meta l4proto udp snat ip to {wan_ip} : ip saddr . udp sport map @cone_rev", *blocks,
                f"{out} masquerade"]
    if (b.mapping, b.allocation) == ("eim", "preserve"):
        return [f"{out} masquerade"]
    if (b.mapping, b.allocation) == ("apdm", "random"):
        return [f"{out} masquerade fully-random"]
    if (b.mapping, b.allocation) == ("apdm", "sequential"):
        ports = ", ".join(f"{i} : {SEQUENTIAL_BASE + i}" for i in range(SEQUENTIAL_SPAN))
        counter = f"numgen inc mod {SEQUENTIAL_SPAN} map {{ {ports} }}"  # nft's `offset` form came out byte-swapped
        return [f"{out} meta l4proto udp snat ip to {wan_ip} : {counter}", f"{out} masquerade"]
    # Random ports that stay put: the kernel draws the first flow's port at random, the learn
    # chain remembers it, and later flows of the same endpoint (to the same remote address,
    # for ADM) are sent out on it.
    if (b.mapping, b.allocation) == ("eim", "random"):
        known = f"snat ip to {wan_ip} : ip saddr . udp sport map @cone_rev"
    elif (b.mapping, b.allocation) == ("adm", "random"):
        known = f"snat ip to {wan_ip} : ip saddr . udp sport . ip daddr map @adm_ports"
    else:
        raise ValueError(f"no rules for mapping={b.mapping} ports={b.allocation}")
    return [f"{out} meta l4proto udp {known}", f"{out} masquerade fully-random"]


def render(b: NatBehaviour, wan: str, lan: str, wan_ip: str, firewall: bool = True,
           lan_net: IPv4Network | None = None) -> str:
    """The router's table; `lan_net`, its LAN's subnet, for ports=block (a block of ports per LAN address)."""
    timeout = b.udp_timeout_s
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
        # The mappings the NAT has made, learnt from outbound packets (chain learn): public
        # port -> private endpoint (cone filtering, hairpinning), private endpoint -> public
        # port (stable random ports, hairpinning), the remotes each public port has sent to (ADF),
        # and (private endpoint, remote address) -> public port (ADM).
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
        "  map adm_ports {",
        "    type ipv4_addr . inet_service . ipv4_addr : inet_service",
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
    lines += [f"    {rule}" for rule in _outbound_nat(b, wan, wan_ip, lan_net)]
    lines.append("  }")
    # What the NAT did, learnt after it did it, from flows the LAN started (a WAN-started flow's
    # packets leave in the reply direction and must not overwrite the mapping).
    learnt = f'oifname "{wan}" meta l4proto udp ct direction original update'
    lines += [
        "  chain learn {",
        "    type filter hook postrouting priority srcnat + 10; policy accept;",
        f"    {learnt} @cone {{ udp sport : ct original ip saddr . ct original proto-src }}",
        f"    {learnt} @cone_rev {{ ct original ip saddr . ct original proto-src : udp sport }}",
        f"    {learnt} @cone_remotes {{ udp sport . ip daddr }}",
        f"    {learnt} @adm_ports {{ ct original ip saddr . ct original proto-src . ip daddr : udp sport }}",
        "  }",
    ]
    # The screen drops before routing, so that what the router has no route for (a carrier NAT's
    # subscribers' LANs) dies as silently as the rest instead of drawing an ICMP error.
    for name, hook in (("screen", "prerouting"), ("forward", "forward"), ("input", "input")):
        lines += [f"  chain {name} {{", f"    type filter hook {hook} priority filter; policy accept;"]
        if firewall:
            lines.append(f'    iifname "{wan}" ct state established,related accept')
            if hook in ("prerouting", "forward") and b.filtering in ("eif", "adf"):
                lines.append(f'    iifname "{wan}" ct status dnat accept')
            lines.append(f'    iifname "{wan}" drop')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
