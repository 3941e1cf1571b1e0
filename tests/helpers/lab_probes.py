"""What the protocol system tests read from a running lab, through the engine only.

The broker's counters and memory (server.status on its node), its log, and the public endpoint a
router's NAT gave a peer's session with the broker (the router's conntrack table): what an
attacker who watched the WAN would know.
"""

from __future__ import annotations

import re

from lab.engines import node_commands
from lab.engines.base import Engine
from wire.protocol import Endpoint


def broker_status(engine: Engine) -> dict:
    """pid, VmRSS and VmHWM (kB) of the broker, and its statistics, fresh."""
    return node_commands.broker_status().run(engine, engine.topology.broker.name)


def broker_log(engine: Engine) -> str | None:
    """The broker's log where the engine keeps one we can read (Docker: the container's log)."""
    node = engine.topology.broker.name
    if hasattr(engine, "client"):
        return engine.client.containers.get(engine.topology.container_name(node)).logs().decode(errors="replace")
    node_dir = getattr(engine, "node_dir", None)
    if node_dir is not None and (node_dir(node) / "main.log").exists():
        return (node_dir(node) / "main.log").read_text(errors="replace")
    return None


def dropped_delta(before: dict, after: dict) -> dict[str, int]:
    old = before["stats"]["dropped"]
    return {k: v - old.get(k, 0) for k, v in after["stats"]["dropped"].items() if v - old.get(k, 0)}


CONNTRACK_REPLY_PORT = re.compile(r"src=\S+ dst=(\S+) sport=\d+ dport=(\d+)")


def public_endpoint(engine: Engine, label: str) -> Endpoint | None:
    """The public endpoint router `label` maps its peer's broker session to, from its conntrack table."""
    topo = engine.topology
    pair = topo.pair(label)
    res = node_commands.conntrack_udp(str(pair.private_ip), str(topo.broker.address), topo.broker_port).run(
        engine, pair.router.name)
    for line in res.stdout.splitlines():
        tuples = CONNTRACK_REPLY_PORT.findall(line)
        if len(tuples) == 2:  # original, then reply direction: the reply goes to the public endpoint
            ip, port = tuples[1]
            return Endpoint(ip, int(port))
    return None
