"""Read and change a running node's access link (through the node's own link control)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.errors import LabError, Progress
from lab.topology import Node
from node.link import parse_link


def linked_nodes(engine: Engine) -> list[Node]:
    """The nodes that have an access link of their own: every router, and the broker."""
    return [n for n in engine.topology.nodes if n.link is not None]


def link_node(engine: Engine, name: str) -> Node:
    """The node `name` if it has a link (a peer's is its router's), with the valid names otherwise."""
    nodes = {n.name: n for n in linked_nodes(engine)}
    for pair in engine.topology.pairs:
        if name == pair.peer.name and pair.router:
            name = pair.router.name
    if name not in nodes:
        raise LabError(f"{name!r} has no access link of its own; choose one of {', '.join(nodes)}")
    return nodes[name]


def set_link(engine: Engine, node: str, setting: str) -> dict:
    """Replace a node's link condition now; returns it as read back from the node."""
    parse_link(setting)  # refuse bad settings here, before the node is touched
    return node_commands.link_set(setting).run(engine, node)


def read_back(engine: Engine, nodes: list[Node]) -> dict[str, dict]:
    """Each node's link as installed (the stage's condition, the queue, loss and rate, read from the kernel)."""
    if not nodes:
        return {}
    with ThreadPoolExecutor(min(32, len(nodes))) as pool:
        return dict(zip((n.name for n in nodes), pool.map(lambda n: node_commands.link_show().run(engine, n.name), nodes)))


def reconcile_links(engine: Engine, live: dict[str, str | None], progress: Progress) -> None:
    """Bring every node back to its configured link (after link-set, lab-up restores it)."""
    for node in linked_nodes(engine):
        if live.get(node.name) not in (None, node.link):
            progress(f"{node.name}: link {live[node.name]} -> {node.link} (as configured)")
            set_link(engine, node.name, node.link)
