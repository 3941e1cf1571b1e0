"""`make bench` (links): how the lab's peer punches through slow and lossy access links, on netns.

Figures, each beside its goal as a ratio (<= 1 meets it), written to .bench/links.json:
- time to punch, both peers probing at once (the partner's delay 0), with every router's link set
  so that the round trip between the peers is 20, 100 and 300 ms: median and 90th percentile over
  the pairs of one lab; goal: median <= 1.2 x RTT + 10 ms
- the round trip the peers measured on the punched path at RTT 100 ms against the configured
  one; goal: within 5 ms
- success over --pairs punches at once (one lab) at 0%, 10% and 30% loss on both access links,
  every message delivered; goals 100%, 99%, 95%
- the link stage's ceiling: datagrams per second a router forwards through a delayed link (its
  userspace stage) and through a perfect one (the kernel alone), from a flood of its peer's
Timing belongs here, never in the tests. Every lab is taken down at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter

from bench.lab_bench import netns_lab, percentile, say, show_figures, warm_bytecode
from lab.engines.base import Engine
from lab.experiment.link_control import set_link
from lab.experiment.nat_control import flush_nat_state
from lab.experiment.punch_test import PunchTestConfig, each, punch

PROJECT = "natlab-benchlink"
RTTS_MS = (20, 100, 300)
LOSSES = {0: 100.0, 10: 99.0, 30: 95.0}  # loss on both links (%) -> goal (% of pairs)
FLOOD_S = 3.0


def set_all(engine: Engine, setting: str) -> None:
    each(lambda pair: set_link(engine, pair.router.name, setting), engine.topology.pairs)


def punch_all(engine: Engine, messages: int, timeout_s: float, relay: str = "off") -> dict[str, dict]:
    """Every pair at once, both sides probing at once; the relay off unless asked (these figures are the punch's)."""
    each(lambda pair: flush_nat_state(engine, pair.router.name), engine.topology.pairs)
    broker = f"{engine.topology.broker.address}:{engine.topology.broker_port}"
    config = PunchTestConfig(messages=messages, late_peer="", punch_delay_s=0.0, timeout_s=timeout_s, relay=relay)
    return punch(engine, config, f"bench-{time.time_ns()}", broker)


def by_pair(engine: Engine, results: dict[str, dict]) -> list[tuple[dict, dict]]:
    return [(results[pp.a.label], results[pp.b.label]) for pp in engine.topology.punch_pairs]


def time_to_punch(engine: Engine) -> dict:
    figures = {}
    for rtt in RTTS_MS:
        set_all(engine, f"delay={rtt / 4:g}ms")  # both links, both ways: RTT = 4 x one link's delay
        pairs = by_pair(engine, punch_all(engine, messages=5, timeout_s=30))
        times = [1000 * max(a["time_to_punch_s"], b["time_to_punch_s"]) for a, b in pairs if a["ok"] and b["ok"]]
        goal = 1.2 * rtt + 10
        figure = {"punched": f"{len(times)}/{len(pairs)}"}
        if times:
            figure.update(median_ms=round(statistics.median(times), 1), p90_ms=round(percentile(times, 0.9), 1),
                          goal_ms=goal, ratio=round(statistics.median(times) / goal, 3))
        figures[f"time_to_punch_rtt_{rtt}ms"] = figure
        say(f"RTT {rtt} ms: {figure}")
    return figures


def measured_rtt(engine: Engine, rtt: int = 100) -> dict:
    """The round trip the peers measured on the punched path (median of their data/ack samples), one
    pair alone: many pairs at once would add their processes' waits on two cores to every sample."""
    set_all(engine, f"delay={rtt / 4:g}ms")
    rtts = [r["rtt_ms"] for r in punch_all(engine, messages=30, timeout_s=30).values() if r.get("rtt_ms") is not None]
    if not rtts:
        return {"rtt_100ms_measured": {"samples": 0}}
    error = statistics.median(rtts) - rtt
    figure = {"configured_ms": rtt, "median_ms": round(statistics.median(rtts), 1), "error_ms": round(error, 1),
              "goal_ms": 5, "ratio": round(abs(error) / 5, 3)}
    say(f"measured RTT: {figure}")
    return {f"rtt_{rtt}ms_measured": figure}


def success(engine: Engine) -> dict:
    figures = {}
    for loss, goal in LOSSES.items():
        set_all(engine, f"loss={loss}%")
        pairs = by_pair(engine, punch_all(engine, messages=10, timeout_s=10 + 0.25 * len(engine.topology.punch_pairs)))
        ok = sum(1 for a, b in pairs if a["ok"] and b["ok"])
        rate = 100 * ok / len(pairs)
        again = sum(r["retransmissions"] for pair in pairs for r in pair)
        why = Counter(r["error"] for pair in pairs for r in pair if not r["ok"])
        figures[f"success_loss_{loss}pct"] = {"pairs": f"{ok}/{len(pairs)}", "percent": round(rate, 1),
                                              "goal_percent": goal, "ratio": round(goal / rate, 3) if rate else None,
                                              "datagrams_sent_again": again, "failures": dict(why)}
        say(f"loss {loss}%: {figures[f'success_loss_{loss}pct']}")
    set_all(engine, "lan")
    return figures


def udp_no_ports(engine: Engine, node: str) -> int:
    """Datagrams the node's kernel received for no socket (/proc/net/snmp, Udp NoPorts): what a flood delivered."""
    lines = [line.split() for line in engine.exec(node, ["cat", "/proc/net/snmp"]).stdout.splitlines()
             if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("NoPorts")])


def ceiling(engine: Engine) -> dict:
    """A flood from peer-a to a closed port of the outsider's, through router-a's link."""
    from lab.engines import node_commands

    pair, outsider = engine.topology.pair("a"), engine.topology.outsider
    target = f"{outsider.address}:9"
    figures = {}
    for name, setting in (("kernel_only", "lan"), ("through_stage", "delay=1ms")):
        set_link(engine, pair.router.name, setting)
        before = udp_no_ports(engine, outsider.name)
        sent = node_commands.flood(target, 10, 1_000_000, 200_000, FLOOD_S).run(engine, pair.peer.name)
        delivered = udp_no_ports(engine, outsider.name) - before
        figures[f"forwarding_pps_{name}"] = {"sent": sent.get("sent"), "delivered": delivered,
                                             "pps": round(delivered / sent.get("seconds", FLOOD_S))}
        say(f"{name}: {figures[f'forwarding_pps_{name}']}")
    set_link(engine, pair.router.name, "lan")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.link_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100, help="pairs for the success figures (one lab)")
    parser.add_argument("--rtt-pairs", type=int, default=20, help="pairs for the time-to-punch figures")
    args = parser.parse_args(argv)
    warm_bytecode()
    results: dict = {}
    stages = ((1, measured_rtt), (args.rtt_pairs, lambda e: {**time_to_punch(e), **ceiling(e)}), (args.pairs, success))
    for pairs, work in stages:
        with netns_lab(PROJECT, pairs) as engine:
            results.update(work(engine))
    show_figures("links.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
