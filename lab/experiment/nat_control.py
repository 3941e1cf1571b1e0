"""Read and change a running router's NAT behaviour (through the router program itself)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.topology import NodeRole, Topology
from nat.behaviour import parse_nat


def set_nat(engine: Engine, router: str, setting: str) -> dict:
    """Replace a router's NAT rules; returns the state now in force."""
    parse_nat(setting)  # refuse bad settings here, before the router is touched
    return node_commands.router_apply(setting).run(engine, router)


def flush_nat_state(engine: Engine, router: str) -> None:
    """Forget the router's conntrack entries: NAT decisions are taken once per entry, so a run or a
    classifier that wants fresh mappings starts from an empty table."""
    node_commands.flush_conntrack().run(engine, router)


def reconcile(engine: Engine, progress) -> None:
    """Bring every router back to its configured NAT setting (after nat-set, lab-up restores it)."""
    for router in engine.topology.by_role(NodeRole.ROUTER):
        if router.nat and live_nat(engine, router.name)["nat"] != router.nat:
            progress(f"{router.name}: NAT {live_nat(engine, router.name)['nat']} -> {router.nat} (as configured)")
            set_nat(engine, router.name, router.nat)


def live_nat(engine: Engine, router: str) -> dict:
    return node_commands.router_show().run(engine, router)


def live_topology(engine: Engine) -> Topology:
    """The topology with each router's NAT setting as in force now (nat-set may have changed it)."""
    routers = [n.name for n in engine.topology.by_role(NodeRole.ROUTER)]
    with ThreadPoolExecutor(32) as pool:  # a hundred pairs have two hundred routers to ask
        live = dict(zip(routers, pool.map(lambda name: live_nat(engine, name)["nat"], routers)))
    nodes = tuple(replace(n, nat=live[n.name]) if n.name in live else n for n in engine.topology.nodes)
    return replace(engine.topology, nodes=nodes)
