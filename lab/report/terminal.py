"""Text renderings for the terminal: the verdict, topology, flows and NAT tables.

The rows are built here once; the terminal (table) and report.md (lab.report.markdown) lay them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.topology import TURN_PORT, NodeRole, Topology
from nat.behaviour import parse_nat
from node.link import parse_link

if TYPE_CHECKING:  # types only: lab-up prints a topology table without loading the pcap analysis
    from lab.analysis.flows import Flow
    from lab.analysis.nat_table import Translation
    from lab.analysis.verdict import Verdict

VERDICT_HEADER = ["#", "result", "check", "what the pcaps show"]
FLOW_HEADER = ["vantage", "proto", "source", "destination", "role", "packets", "bytes", "first", "last"]
NAT_HEADER = ["router", "private", "public", "remote", "first seen", "out", "in", "note"]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def seconds(t: float) -> str:
    """A time since the run's first packet, as tshark's frame.time_relative shows it."""
    return f"+{t:.6f}s"


def verdict_summary(verdict: Verdict) -> str:
    if verdict.ok:
        return "all checks passed"
    unsure = sum(c.inconclusive for c in verdict.checks)
    failed = sum(not c.ok and not c.inconclusive for c in verdict.checks)
    return f"{failed} check(s) FAILED" + (f", {unsure} inconclusive" if unsure else "")


def verdict_rows(verdict: Verdict, verbose: bool = False) -> list[list[str]]:
    rows = []
    for c in verdict.checks:
        rows.append([c.id, c.status, c.title, c.detail])
        if verbose or not c.ok:
            rows += [["", "", "", f"  {e}"] for e in c.evidence]
    return rows


PATHS_SHOWN = 12  # pairs listed by name under the verdict; the rest are counted


def path_lines(verdict: Verdict) -> list[str]:
    """Each pair's path under the verdict: counted, and the pairs listed (the unexpected ones first)."""
    if not verdict.paths:
        return []
    counts = {}
    for row in verdict.paths:
        counts[row["path"]] = counts.get(row["path"], 0) + 1
    lines = ["paths: " + ", ".join(f"{n} {path}" for path, n in sorted(counts.items()))]
    def met(row: dict) -> bool:  # a program run's rows say so themselves (`any` is met by either path)
        return row.get("as_expected", row["path"] == row["expected"])

    rows = sorted(verdict.paths, key=lambda r: (met(r), r["pair"]))
    for row in rows[:PATHS_SHOWN]:
        expected = "as expected" if met(row) else f"EXPECTED {row['expected']}"
        lines.append(f"  pair {row['pair']}: {row['path']} ({expected}: {row['reason']})")
    if len(rows) > PATHS_SHOWN:
        lines.append(f"  ... {len(rows) - PATHS_SHOWN} more pairs in verdict.json")
    return lines


def verdict_table(verdict: Verdict, verbose: bool = False) -> str:
    return "\n".join([f"verdict for run {verdict.run_id}: {verdict_summary(verdict)}",
                      table(verdict_rows(verdict, verbose), VERDICT_HEADER), *path_lines(verdict)])


def flow_rows(flows: list[Flow]) -> list[list[str]]:
    return [
        [f.vantage, f.proto, f.src, f.dst, f.role.value, str(f.packets), str(f.bytes),
         seconds(f.first), seconds(f.last)]
        for f in flows
    ]


def nat_note(t: Translation) -> str:
    if not t.translated:
        return "NOT translated: forwarded to a private address"
    if t.behind:
        return f"behind {t.behind}: the broker sees its translation"
    return "as the broker reported" if t.reported else "NOT the endpoint the broker reported"


def nat_rows(translations: list[Translation]) -> list[list[str]]:
    return [
        [t.router, t.private, t.public, t.remote, seconds(t.first), str(t.outbound), str(t.inbound), nat_note(t)]
        for t in translations
    ]


def capture_summary(flows: list[Flow], translations: list[Translation]) -> str:
    """What `make pcap-summary` prints: the flows at every vantage point, then the NAT tables."""
    from lab.analysis.nat_table import chains

    return (
        "flows (one direction of a 5-tuple at one capture point, per role)\n"
        + table(flow_rows(flows), FLOW_HEADER)
        + "\n\nNAT translations (from each router's LAN and WAN captures)\n"
        + (table(nat_rows(translations), NAT_HEADER) if translations else "none seen")
        + ("\n\nthrough two NATs (a home router, then its carrier)\n" + "\n".join(two)
           if (two := chains(translations)) else "")
    )


def link_text(setting: str | None) -> str:
    """A node's link as the tables show it: the setting and, for a preset, what it stands for."""
    if setting is None:
        return "-"
    described = parse_link(setting).describe()
    return setting if described == setting else f"{setting} ({described})"


def topology_table(topology: Topology, relay_answering: bool | None = None) -> str:
    """One row per interface; routers show their NAT setting and its effective behaviour, routers and
    the broker their access link, the relay its TURN port (and whether it answers, on a running lab)."""
    rows = []
    for node in topology.nodes:
        role, link = node.role.value, link_text(node.link)
        via = ", ".join(f"{r.destination} via {r.via}" for r in node.routes) or "-"
        if node.role is NodeRole.ROUTER and node.nat:
            via = f"NAT {node.nat}: {parse_nat(node.nat).describe()}"
        if node.role is NodeRole.RELAY:
            state = {None: "", True: ", answering", False: ", NOT ANSWERING"}[relay_answering]
            via = f"TURN (coturn) on udp port {TURN_PORT}{state}"
        if node.role is NodeRole.WAN_HOST:
            via = "your WAN program's host (make run WAN=...)"
        addresses = [(i, str(i.address)) for i in node.interfaces] + [(node.interfaces[0], str(a)) for a in node.aliases]
        for iface, address in addresses:
            net = topology.network(iface.network)
            rows.append([topology.container_name(node.name), role, f"{net.name} {net.subnet}", address, link, via])
            role = via = link = ""
    return table(rows, ["container", "role", "network", "address", "link", "routes / NAT"])


def _summary(found: dict) -> str:
    parts = [found.get("mapping") or "?", found.get("filtering") or "n/a"]
    if found.get("port_preserved") is not None:
        parts.append("preserve" if found["port_preserved"] else "no-preserve")
    if found.get("hairpinning") is not None:
        parts.append("hairpin" if found["hairpinning"] else "no-hairpin")
    if found.get("lifetime_s") is not None:
        parts.append(f"{found['lifetime_s']}s")
    return " ".join(parts)


def classification_table(rows: list) -> str:
    """NAT setting x (configured, own classifier, natdiscovery, stun-client) and whether all agree."""
    body = []
    for row in rows:
        b = row.configured
        configured = (f"{b.mapping} {b.filtering} {'preserve' if b.allocation == 'preserve' else 'no-preserve'} "
                      f"{'hairpin' if b.hairpinning else 'no-hairpin'}")
        if row.own.get("lifetime_s") is not None:
            configured += f" {b.udp_timeout_s}s"
        body.append([row.setting, configured, _summary(row.own), _summary(row.natdiscovery),
                     _summary(row.stun_client), "yes" if not row.disagreements else "NO: " + "; ".join(row.disagreements)])
    return table(body, ["setting", "configured", "own classifier", "natdiscovery", "stun-client", "agree"])
