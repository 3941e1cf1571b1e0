"""`make bench-broker`: the broker as a server, measured inside the lab.

Figures (printed as a table and written to .bench/broker.json):
- STUN Binding throughput, requests answered per second, of the broker and of coturn's
  `turnserver --stun-only`, side by side under the same load generator (peers.stun_load), as a
  ratio. Both servers run on the outsider node, on its own lab address and ports of their own
  (the broker standalone on BROKER_PORT, coturn on COTURN_PORT), each pinned to one core
  (taskset -c 0) in turn, the load generator pinned to the other (taskset -c 1); the rounds
  alternate between the two servers and the median counts. The broker runs with its STUN rate
  limit off for this (coturn has none): the figure is the codec and the event loop.
- junk flood against the lab's own broker (198.51.100.10, its default limits): datagrams and
  bytes sent by peers.flood from the outsider, the broker's drops by reason, its memory
  (VmRSS before, VmHWM after) and the bytes it answered.
Every datagram stays on the lab's WAN. Needs the lab up (`make lab-up`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.engines.docker.engine import DockerEngine
from lab.errors import LabError
from lab.paths import PROJECT_DIR
from lab.report.terminal import table
from lab.topology import build_topology

BROKER_PORT, COTURN_PORT = 3578, 3678
STATE = "/tmp/natlab-bench-broker"
COTURN_PID = "/tmp/natlab-bench-turnserver.pid"
SERVER_CORE, LOAD_CORE = "0", "1"


def wait_answering(engine: Engine, node: str, target: str, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if node_commands.stun_load(target, 0.2).run(engine, node)["answered"] > 0:
                return
        except LabError:  # not listening yet
            pass
        time.sleep(0.5)
    raise LabError(f"{what} on {target} does not answer STUN")


def start_servers(engine: Engine, node: str, ip: str) -> None:
    for path in (STATE, COTURN_PID):
        node_commands.remove_tree(path).run(engine, node)
    engine.spawn(node, ["taskset", "-c", SERVER_CORE,
                        *node_commands.standalone_broker(ip, BROKER_PORT, STATE, "--stun-rate", "0", "--rate", "0")])
    engine.spawn(node, ["taskset", "-c", SERVER_CORE, "turnserver", "-n", "--stun-only", "--listening-ip", ip,
                        "--listening-port", str(COTURN_PORT), "--no-tls", "--no-dtls", "--no-tcp", "--no-cli",
                        "--no-software-attribute", "--pidfile", COTURN_PID, "--log-file", "stdout", "--simple-log"])
    wait_answering(engine, node, f"{ip}:{BROKER_PORT}", "the bench broker")
    wait_answering(engine, node, f"{ip}:{COTURN_PORT}", "coturn")


def stop_servers(engine: Engine, node: str) -> None:
    """Each by the pid it wrote, nothing else."""
    for pid_file in (f"{STATE}/broker.pid", COTURN_PID):
        node_commands.stop_by_pid_file(pid_file).run(engine, node)


def throughput(engine: Engine, rounds: int, seconds: float) -> dict:
    node = engine.topology.outsider.name
    ip = str(engine.topology.outsider.address)
    start_servers(engine, node, ip)
    try:
        runs: dict[str, list[int]] = {"broker": [], "coturn": []}
        for _ in range(rounds):
            for name, port in (("broker", BROKER_PORT), ("coturn", COTURN_PORT)):
                load = node_commands.stun_load(f"{ip}:{port}", seconds, window=128, core=LOAD_CORE)
                runs[name].append(load.run(engine, node)["rps"])
    finally:
        stop_servers(engine, node)
    broker, coturn = (statistics.median(runs[n]) for n in ("broker", "coturn"))
    return {"broker_rps": broker, "coturn_rps": coturn, "ratio": round(broker / coturn, 3) if coturn else None,
            "rounds": runs}


def flood(engine: Engine, count: int, rate: int) -> dict:
    topo = engine.topology
    broker_node = topo.broker.name

    def status() -> dict:
        return node_commands.broker_status().run(engine, broker_node)

    before = status()
    target = f"{topo.broker.address}:{topo.broker_port}"
    sent = node_commands.flood(target, topo.broker_alt_port, count, rate, 300).run(engine, topo.outsider.name)
    after = status()
    old = before["stats"]["dropped"]
    dropped = {k: v - old.get(k, 0) for k, v in after["stats"]["dropped"].items() if v > old.get(k, 0)}
    return {"flood": sent, "dropped": dropped,
            "received": after["stats"]["datagrams"] - before["stats"]["datagrams"],
            "vm_rss_before_kb": before["VmRSS"], "vm_hwm_after_kb": after["VmHWM"], "vm_rss_after_kb": after["VmRSS"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.broker_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    parser.add_argument("--junk", type=int, default=100_000, help="datagrams in the junk flood")
    parser.add_argument("--junk-rate", type=int, default=20_000)
    args = parser.parse_args(argv)
    engine = DockerEngine(build_topology(), PROJECT_DIR)
    if not engine.is_up():
        raise SystemExit("bench-broker: the lab is not up: run `make lab-up` first")
    stun = throughput(engine, args.rounds, args.seconds)
    junk = flood(engine, args.junk, args.junk_rate)
    figures = {"stun": stun, "junk": junk}
    rows = [
        ["STUN Binding, broker (1 core)", f"{stun['broker_rps']:.0f} requests/s"],
        ["STUN Binding, coturn --stun-only (1 core)", f"{stun['coturn_rps']:.0f} requests/s"],
        ["broker / coturn", f"{stun['ratio']}"],
        ["junk flood", f"{junk['flood']['sent']} datagrams, {junk['flood']['sent_bytes']} bytes "
                       f"in {junk['flood']['seconds']}s; broker received {junk['received']}"],
        ["dropped by the broker", ", ".join(f"{k} {v}" for k, v in sorted(junk["dropped"].items()))],
        ["answered to the flood", f"{junk['flood']['replies']} datagrams, {junk['flood']['reply_bytes']} bytes"],
        ["broker memory", f"VmRSS {junk['vm_rss_before_kb']} kB before, VmHWM {junk['vm_hwm_after_kb']} kB after"],
    ]
    print(table(rows, ["figure", "value"]))
    out = PROJECT_DIR / ".bench" / "broker.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
