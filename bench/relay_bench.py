"""`make bench` (relay): the relayed path beside the direct one, on netns, at 100 ms between the peers.

Figures, each beside its goal as a ratio (<= 1 meets it), written to .bench/relay.json:
- the round trip on the relayed path (RELAY=force) and on the direct path of the same NAT pair
  (port-restricted on both sides), every router's link at 25 ms each way (100 ms between the
  peers): the peers' own medians (30 messages each way), one pair alone (many at once add their
  processes' waits on two cores to every sample); no goal, the figure is the cost of the relay
  (its ratio to the direct round trip)
- the time to fall back, symmetric NATs on both sides (no direct path), --pairs at once: from the
  introduction to the first datagram heard through the relay; goal: at most the punch window + 2 RTT
Timing belongs here, never in the tests. Every lab is taken down at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench.lab_bench import netns_lab, say, show_figures, warm_bytecode
from bench.link_bench import by_pair, punch_all, set_all
from lab.engines.base import Engine
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import each

PROJECT = "natlab-benchrelay"
RTT_MS = 100


def set_nats(engine: Engine, setting: str) -> None:
    each(lambda pair: set_nat(engine, pair.router.name, setting), engine.topology.pairs)


def round_trips(engine: Engine) -> dict:
    set_nats(engine, "port-restricted")
    figures, medians = {}, {}
    for relay, route in (("auto", "direct"), ("force", "relayed")):
        results = punch_all(engine, messages=30, timeout_s=30, relay=relay)
        rtts = [r["rtt_ms"] for r in results.values() if r["ok"] and r["route"] == route and r.get("rtt_ms")]
        medians[route] = statistics.median(rtts) if rtts else None
        figures[f"rtt_{route}_ms"] = {"samples": len(rtts), "of": len(results),
                                      "median_ms": round(medians[route], 1) if rtts else None}
        say(f"{route}: {figures[f'rtt_{route}_ms']}")
    if medians["direct"] and medians["relayed"]:
        figures["rtt_relayed_over_direct"] = {"ratio_to_direct": round(medians["relayed"] / medians["direct"], 3)}
    return figures


def fall_back(engine: Engine) -> dict:
    set_nats(engine, "symmetric")
    pairs = by_pair(engine, punch_all(engine, messages=5, timeout_s=40, relay="auto"))
    waits = [max(a["time_to_first_heard_s"], b["time_to_first_heard_s"]) for a, b in pairs
             if a["ok"] and b["ok"] and a["route"] == b["route"] == "relayed"]
    window = max(r["punch_window_s"] for pair in pairs for r in pair)
    goal = window + 2 * RTT_MS / 1000
    figure = {"relayed": f"{len(waits)}/{len(pairs)}", "punch_window_s": window, "goal_s": round(goal, 3)}
    if waits:
        figure.update(median_s=round(statistics.median(waits), 3), max_s=round(max(waits), 3),
                      ratio=round(statistics.median(waits) / goal, 3))
    say(f"fall back: {figure}")
    return {"time_to_fall_back": figure}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.relay_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10, help="pairs punched at once for the time to fall back")
    args = parser.parse_args(argv)
    warm_bytecode()
    results: dict = {}
    for pairs, work in ((1, round_trips), (args.pairs, fall_back)):
        with netns_lab(PROJECT, pairs) as engine:
            set_all(engine, f"delay={RTT_MS / 4:g}ms")  # both links, both ways: 100 ms between the peers
            results.update(work(engine))
    show_figures("relay.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
