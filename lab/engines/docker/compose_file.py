"""Render a Topology as a Compose file. compose.yaml in the repository is this function's output.

Works with Compose v2 and v1.29 (Compose Specification format, no top-level `name`: the project
name is passed on the command line). Design points:
- Networks are plain bridges, not `internal` (the host's bridge netfilter drops what a router
  forwards on internal ones), but the host takes no address on them (inhibit_ipv4), does not
  masquerade them, and every node drops Docker's default route at start: a node's only way out
  is its lab route.
- The node packages' code (CODE_DIRS, nothing of lab/) is mounted read-only; the image holds only
  Debian packages.
- Peers start after their router and the relay. No container has a Docker healthcheck: one runs
  an exec per container per interval for the lab's whole life (an idle 28-container lab kept this
  2-core machine 77% busy); lab-up waits for each node's READY file itself, once.
- What a node runs (node_commands.node_program) with which environment and sysctls (launch.py) is
  the same for every engine.
"""

from __future__ import annotations

import hashlib

import yaml

from lab.engines.launch import node_environment, node_sysctls
from lab.engines.node_commands import node_program
from lab.paths import MOUNT_ENV, USER_IMAGE_ENV, lab_runtime
from lab.topology import PROGRAM_ROLES, Node, NodeRole, Topology

NODE_IMAGE = "natlab-node:latest"
CODE_DIRS = ("nat", "node", "peers", "relay", "server", "wire")  # what the nodes run: nothing of the host's lab/
HEADER = "# Generated from lab/topology.py by `make compose`; edit the topology, not this file.\n"


def _variable(setting: str, node: Node) -> str:
    return f"NATLAB_{setting}_" + node.name.removeprefix("router-").upper().replace("-", "_")


def nat_variable(node: Node) -> str:
    """The environment variable that overrides a router's preset, e.g. NATLAB_NAT_A."""
    return _variable("NAT", node)


def link_variable(node: Node) -> str:
    """The environment variable that overrides a node's link, e.g. NATLAB_LINK_A, NATLAB_LINK_BROKER."""
    return _variable("LINK", node)


def compose_variables(topology: Topology) -> dict[str, str]:
    """What compose is given in its environment: each router's NAT and each node's link as set now
    (compose.yaml names them, so that the file depends on the lab's name and size only)."""
    env = {nat_variable(n): n.nat or "" for n in topology.by_role(NodeRole.ROUTER)}
    env.update({link_variable(n): n.link for n in topology.nodes if n.link is not None})
    return env


def compose_environment(topology: Topology, node: Node) -> dict[str, str]:
    """The node's environment, a router's preset and a node's link overridable when compose runs."""
    env = node_environment(topology, node)
    if node.role is NodeRole.ROUTER:
        env["NATLAB_NAT"] = f"${{{nat_variable(node)}:-{node.nat}}}"
    if node.link is not None:
        env["NATLAB_LINK"] = f"${{{link_variable(node)}:-{node.link}}}"
    return env


def bridge_name(topology: Topology, network: str) -> str:
    """The host bridge of a network: <project>-<network> where that fits Linux's 15 characters, else a
    digest of it (truncating could give two networks one bridge)."""
    name = f"{topology.project}-{network}"
    return name if len(name) <= 15 else "nl" + hashlib.sha1(name.encode()).hexdigest()[:13]


MAILBOX_IN_NODE = "/natlab/mailbox"  # where a peer container sees the lab's mailboxes
FILES_IN_NODE = "/natlab/files"  # and the user's files (MOUNT), read-only


def user_volumes(topology: Topology) -> list[str]:
    """What `make run` needs in a program node: the mailboxes, shared by the peers, and the user's
    files (NATLAB_MOUNT when compose runs; without it an empty directory of the lab's)."""
    runtime = f"./{lab_runtime(topology.project)}"
    return [f"{runtime}/mailbox:{MAILBOX_IN_NODE}", f"${{{MOUNT_ENV}:-{runtime}/no-files}}:{FILES_IN_NODE}:ro"]


def service(topology: Topology, node: Node) -> dict:
    runs_programs = node.role in PROGRAM_ROLES
    svc: dict = {
        # A program node may run the user's image instead (NODE_IMAGE=, when compose runs).
        "image": f"${{{USER_IMAGE_ENV}:-{NODE_IMAGE}}}" if runs_programs else NODE_IMAGE,
        "container_name": topology.container_name(node.name),
        "hostname": node.name,
        "command": node_program(topology, node),
        "environment": compose_environment(topology, node),
        "volumes": [f"./{d}:/opt/natlab/{d}:ro" for d in CODE_DIRS] + (user_volumes(topology)
                                                                      if runs_programs else []),
        "cap_add": ["NET_ADMIN", "NET_RAW"],
        "sysctls": node_sysctls(node),
        "networks": {i.network: {"ipv4_address": str(i.address)} for i in node.interfaces},
        "stop_grace_period": "2s",
        "labels": {"org.natlab.role": node.role.value},
    }
    if runs_programs:
        svc["devices"] = ["/dev/net/tun:/dev/net/tun"]  # for the user's VPNs and overlays, as on the host
    if node.role is NodeRole.PEER:
        router = next(p.router for p in topology.pairs if p.peer == node)
        svc["depends_on"] = [n.name for n in (router, topology.relay) if n]
    return svc


def compose_spec(topology: Topology) -> dict:
    return {
        "services": {node.name: service(topology, node) for node in topology.nodes},
        "networks": {
            net.name: {
                "driver": "bridge",
                "driver_opts": {
                    "com.docker.network.bridge.name": bridge_name(topology, net.name),
                    "com.docker.network.bridge.inhibit_ipv4": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "false",
                },
                "ipam": {"config": [{"subnet": str(net.subnet), "gateway": str(net.reserved_gateway)}]},
            }
            for net in topology.networks
        },
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:  # no &anchors: the file is for people to read
        return True

    def represent_list(self, data: list) -> yaml.Node:
        flow = all(isinstance(item, (str, int)) for item in data) and len(str(data)) < 80
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_list)


def render(topology: Topology) -> str:
    body = yaml.dump(compose_spec(topology), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    return HEADER + body
