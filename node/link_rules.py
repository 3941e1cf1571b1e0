"""Kernel rules for a node's access link, as scripts and commands (what stays in the kernel, and the queue).

A node's link has an outside (its interfaces towards the internet) and, for a router, an inside
(its LAN). Each direction is conditioned once, on the way in, before conntrack and NAT see a
packet (so the NAT meets packets as a slow link delivers them, and nothing it decides waits in a
queue):
- loss: an nftables table of its own, `ip natlab_link` (never the NAT's `natlab`), drops
  `numgen random` packets at prerouting (and at output for the node's own packets), ahead of all;
- delay, jitter, reordering, corruption: an iptables raw-table chain (`natlab-link`) sends the
  packets to the link stage's queue (NFQUEUE; node/link_stage.py); not installed while the link
  holds nothing back;
- rate: a token bucket (tbf) on each egress: the outside for what the LAN sends, the inside for
  what comes to it. The broker has no inside: its rate holds for what it sends;
- duplication: a tc filter on each ingress whose classic BPF program draws a random number, and a
  mirred action that hands a copy of the chosen packets to the interface's receive path again. The
  kernel classifies such a copy again (there is no skbedit here to mark it), so a copy may be copied
  once more, three copies deep at most (its nesting limit): the draw is made so that the expected
  number of copies per packet is the share asked for.
So a router's LAN capture sees a packet before its link and the WAN capture after it, and the other
way round for what comes in: the condition is visible between the two captures.
"""

from __future__ import annotations

from node.link import LinkCondition

TABLE = "natlab_link"
QUEUE = 7  # the link stage's NFQUEUE number (queues are per network namespace)
CHAIN_IN, CHAIN_OUT = "natlab-link", "natlab-link-out"
LOSS_SCALE = 1_000_000  # numgen's range: loss to a millionth
TBF_LATENCY = "100ms"  # how long a packet may wait for its tokens before the bucket drops it
MTU = 1514


def loss_script(condition: LinkCondition, inside: list[str], outside: list[str]) -> str:
    """The nft script that (re)makes the loss table, or removes it for a lossless link."""
    script = f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\n"  # made, then deleted: gone either way
    if not condition.loss_pct:
        return script
    threshold = round(condition.loss_pct / 100 * LOSS_SCALE)
    ins = ", ".join(f'"{i}"' for i in [*inside, *outside])
    outs = ", ".join(f'"{i}"' for i in outside)
    return script + (
        f"table ip {TABLE} {{\n"
        f"  chain pre {{ type filter hook prerouting priority -350; policy accept;\n"
        f"    iifname {{ {ins} }} numgen random mod {LOSS_SCALE} < {threshold} drop\n  }}\n"
        f"  chain out {{ type filter hook output priority -350; policy accept;\n"
        f"    oifname {{ {outs} }} numgen random mod {LOSS_SCALE} < {threshold} drop\n  }}\n"
        "}\n"
    )


def queue_script(condition: LinkCondition, inside: list[str], outside: list[str]) -> str:
    """The iptables-restore script (with --noflush) of the queue chains: flushed, then filled if the link holds packets."""
    lines = ["*raw", f":{CHAIN_IN} - [0:0]", f":{CHAIN_OUT} - [0:0]"]
    if condition.holds_packets:
        lines += [f"-A {CHAIN_IN} -i {i} -j NFQUEUE --queue-num {QUEUE}" for i in [*inside, *outside]]
        lines += [f"-A {CHAIN_OUT} -o {i} -j NFQUEUE --queue-num {QUEUE}" for i in outside]
    return "\n".join([*lines, "COMMIT", ""])


def queue_jumps() -> list[tuple[str, str]]:
    """(built-in chain, our chain) of the raw table: the jumps made once, kept across changes."""
    return [("PREROUTING", CHAIN_IN), ("OUTPUT", CHAIN_OUT)]


def rate_commands(condition: LinkCondition, inside: list[str], outside: list[str]) -> list[list[str]]:
    """tc commands that give every egress of the link its rate, or take the bucket away."""
    if not condition.rate_kbit:
        return [["tc", "qdisc", "del", "dev", dev, "root"] for dev in [*outside, *inside]]
    burst = max(2 * MTU, condition.rate_kbit * 1000 // 8 // 250)  # 4 ms of the rate, at least two frames
    return [["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{condition.rate_kbit}kbit",
             "burst", str(burst), "latency", TBF_LATENCY] for dev in [*outside, *inside]]


DUPLICATE_DEPTH = 3  # copies the kernel makes of one packet at most (mirred's nesting limit, measured)
RANDOM_LOAD = 0xFFFFF000 + 56  # classic BPF: SKF_AD_OFF + SKF_AD_RANDOM, a random 32-bit number
HALF = 0x7FFFFFFF  # the draw is masked to 31 bits: classic BPF's jump constants are sign-extended past them


def per_pass(share: float) -> float:
    """The chance to copy at each pass so that the expected copies per packet (x + x^2 + x^3) is `share`."""
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if sum(mid ** k for k in range(1, DUPLICATE_DEPTH + 1)) < share else (low, mid)
    return low


def duplicate_threshold(condition: LinkCondition) -> int:
    return round(per_pass(condition.duplicate_pct / 100) * (HALF + 1))


def share_of(threshold: int) -> float:
    """The duplicate percentage a filter's threshold stands for (read back from the kernel)."""
    x = threshold / (HALF + 1)
    return round(100 * sum(x ** k for k in range(1, DUPLICATE_DEPTH + 1)), 3)


def duplicate_commands(condition: LinkCondition, inside: list[str], outside: list[str]) -> list[list[str]]:
    """tc commands that give every ingress of the link its duplication, or take it away."""
    devices = [*inside, *outside]
    if not condition.duplicate_pct:
        return [["tc", "qdisc", "del", "dev", dev, "handle", "ffff:", "ingress"] for dev in devices]
    program = (f"5,32 0 0 {RANDOM_LOAD},84 0 0 {HALF},53 0 1 {duplicate_threshold(condition)},"
               "6 0 0 0,6 0 0 4294967295")  # draw; keep 31 bits; at or past the threshold: no match; else match
    out = []
    for dev in devices:
        out.append(["tc", "qdisc", "replace", "dev", dev, "handle", "ffff:", "ingress"])
        out.append(["tc", "filter", "replace", "dev", dev, "ingress", "protocol", "ip", "prio", "1", "handle", "1",
                    "bpf", "bytecode", program, "action", "mirred", "ingress", "mirror", "dev", dev])
    return out
