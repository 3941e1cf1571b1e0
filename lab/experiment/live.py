"""The lab as it is now: each router's NAT and each node's link as in force (nat-set and link-set may
have changed them since lab-up), read from the nodes themselves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.errors import LabError, Progress
from lab.experiment.link_control import reconcile_links
from lab.experiment.nat_control import live_nat, reconcile
from lab.topology import NodeRole, Topology


def require_up(engine: Engine) -> None:
    """Refuse a command on a lab that is down, or up in another shape than the command's topology (TOPOLOGY
    given to lab-up but not to this command): pair 1's peer b has its address where the shape puts it."""
    if not engine.is_up():
        raise LabError("the lab is not up: run `make lab-up` first (with the TOPOLOGY and PAIRS given here)")
    peer_b = engine.topology.punch_pairs[0].b
    res = engine.exec(peer_b.peer.name, ["ip", "-4", "-o", "addr", "show", "scope", "global"])
    held = sorted(line.split()[3].split("/")[0] for line in res.stdout.splitlines() if len(line.split()) > 3)
    if res.exit_code == 0 and str(peer_b.private_ip) not in held:
        raise LabError(f"the lab is up in another shape: {peer_b.peer.name} holds {', '.join(held) or 'no address'}, "
                       f"not {peer_b.private_ip}; give this command the TOPOLOGY the lab was brought up with")


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
