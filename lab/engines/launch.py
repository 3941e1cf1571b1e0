"""The environment and sysctls each node is launched with: derived from the topology, read by every engine.

Its program is node_commands.node_program. compose_file.py writes all three into compose.yaml; the
netns engine starts the same program with the same environment and sysctls inside the node's
namespace. One derivation, so the engines cannot drift apart.
"""

from __future__ import annotations

from ipaddress import IPv4Interface

from lab.topology import Node, NodeRole, Topology
from node.settings import RUN_DIR_ENV, encode_addresses, encode_aliases, encode_ranges, encode_routes

NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1}
ROUTER_SYSCTLS = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}


def node_environment(topology: Topology, node: Node, run_dir: str | None = None) -> dict[str, str]:
    """The NATLAB_* settings node/settings.py decodes. `run_dir`: a directory of the node's own, for engines whose
    nodes share one filesystem (without it the node uses today's fixed paths)."""
    env = {
        "NATLAB_NODE": node.name,
        "NATLAB_ADDRESSES": encode_addresses({i.side: i.address for i in node.interfaces}),
        "NATLAB_ROUTES": encode_routes([(r.destination, r.via) for r in node.routes]),
    }
    if node.aliases:
        subnet = topology.network(node.interfaces[0].network).subnet
        env["NATLAB_ALIASES"] = encode_aliases([IPv4Interface(f"{a}/{subnet.prefixlen}") for a in node.aliases])
    if node.role is NodeRole.ROUTER:
        env["NATLAB_NAT"] = node.nat or ""
    if node.role is NodeRole.RELAY:
        env["NATLAB_RELAY_PEERS"] = encode_ranges(topology.relay_peer_ranges())
    if node.link is not None:
        env["NATLAB_LINK"] = node.link
    if run_dir is not None:
        env[RUN_DIR_ENV] = run_dir
    return env


def node_sysctls(node: Node) -> dict[str, int]:
    """Namespaced sysctls the engine sets before the node starts (nodes cannot write their own)."""
    # A new namespace inherits the host's forwarding (on wherever Docker runs): only routers forward.
    return {**NO_IPV6, **(ROUTER_SYSCTLS if node.role is NodeRole.ROUTER else {"net.ipv4.ip_forward": 0})}
