"""Text renderings for the terminal: the verdict table and the topology table."""

from __future__ import annotations

from lab.topology import Role, Topology
from lab.verdict import Verdict


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def verdict_table(verdict: Verdict, verbose: bool = False) -> str:
    rows = []
    for c in verdict.checks:
        rows.append([c.id, "PASS" if c.ok else "FAIL", c.title, c.detail])
        if verbose or not c.ok:
            rows += [["", "", "", f"  {e}"] for e in c.evidence]
    summary = "all checks passed" if verdict.ok else f"{sum(not c.ok for c in verdict.checks)} check(s) FAILED"
    return f"verdict for run {verdict.run_id}: {summary}\n" + table(rows, ["#", "result", "check", "what the pcaps show"])


def topology_table(topology: Topology) -> str:
    rows = []
    for node in topology.nodes:
        role = node.role.value + (f" ({node.nat} NAT)" if node.role is Role.ROUTER else "")
        via = ", ".join(f"{r.destination} via {r.via}" for r in node.routes) or "-"
        for iface in node.interfaces:
            net = topology.network(iface.network)
            rows.append([topology.container_name(node.name), role, f"{net.name} {net.subnet}", str(iface.address), via])
            role = via = ""
    return table(rows, ["container", "role", "network", "address", "routes"])
