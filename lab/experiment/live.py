"""The lab as it is now: each router's NAT and each node's link as in force (nat-set and link-set may
have changed them since lab-up), read from the nodes themselves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.errors import Progress
from lab.experiment.link_control import reconcile_links
from lab.experiment.nat_control import live_nat, reconcile
from lab.topology import NodeRole, Topology


def live_settings(engine: Engine) -> dict[str, dict]:
    """Each router's state (its NAT, firewall and link setting) and the broker's link, by node."""
    routers = [n.name for n in engine.topology.by_role(NodeRole.ROUTER)]
    with ThreadPoolExecutor(32) as pool:  # a hundred pairs have two hundred routers to ask
        live = dict(zip(routers, pool.map(lambda name: live_nat(engine, name), routers)))
    broker = engine.topology.broker
    if broker.link is not None:
        live[broker.name] = {"link": node_commands.link_recorded().run(engine, broker.name)["setting"]}
    return live


def live_topology(engine: Engine, live: dict[str, dict] | None = None) -> Topology:
    """The topology with each router's NAT and each node's link as in force now."""
    live = live_settings(engine) if live is None else live
    nodes = tuple(
        replace(n, nat=live[n.name].get("nat", n.nat), link=live[n.name].get("link") or n.link) if n.name in live else n
        for n in engine.topology.nodes
    )
    return replace(engine.topology, nodes=nodes)


def restore_configured(engine: Engine, progress: Progress) -> None:
    """A lab that was up takes the configured NAT and links again (lab-up on a lab that had nat-set, link-set)."""
    live = live_settings(engine)
    reconcile(engine, live, progress)
    reconcile_links(engine, {name: state.get("link") for name, state in live.items()}, progress)
