"""Read and change a running router's NAT behaviour (through the router program itself)."""

from __future__ import annotations

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.topology import NodeRole
from nat.behaviour import parse_nat


def set_nat(engine: Engine, router: str, setting: str) -> dict:
    """Replace a router's NAT rules; returns the state now in force."""
    parse_nat(setting)  # refuse bad settings here, before the router is touched
    return node_commands.router_apply(setting).run(engine, router)


def flush_nat_state(engine: Engine, router: str) -> None:
    """Forget the router's conntrack entries: NAT decisions are taken once per entry, so a run or a
    classifier that wants fresh mappings starts from an empty table."""
    node_commands.flush_conntrack().run(engine, router)


def reconcile(engine: Engine, live: dict[str, dict], progress) -> None:
    """Bring every router back to its configured NAT setting (after nat-set, lab-up restores it)."""
    for router in engine.topology.by_role(NodeRole.ROUTER):
        if router.nat and live[router.name]["nat"] != router.nat:
            progress(f"{router.name}: NAT {live[router.name]['nat']} -> {router.nat} (as configured)")
            set_nat(engine, router.name, router.nat)


def live_nat(engine: Engine, router: str) -> dict:
    return node_commands.router_show().run(engine, router)
