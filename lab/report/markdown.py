"""report.md: a run's verdict, its ladder as a Mermaid sequence diagram, its NAT table and flows.

Mermaid renders where the file is read (GitHub, most editors); the same ladder as a picture to
scale is ladder.png beside it (lab.report.ladder_png). Mermaid reads '#' as a comment and ';' as a line
end anywhere, so neither may reach a label.
"""

from __future__ import annotations

import re

from lab.analysis.flows import Flow
from lab.analysis.ladder import Channel, Ladder, Lane
from lab.analysis.nat_table import Translation, chains
from lab.analysis.program_paths import ProgramPath
from lab.analysis.verdict import Verdict
from lab.report.terminal import (
    FLOW_HEADER,
    NAT_HEADER,
    VERDICT_HEADER,
    flow_rows,
    nat_rows,
    path_lines,
    verdict_rows,
    verdict_summary,
)

# Background of each channel's stretch of the diagram; the picture uses the same hues.
RECT = {
    Channel.BROKER: "rgba(31, 119, 180, 0.12)",
    Channel.DIRECT: "rgba(44, 160, 44, 0.12)",
    Channel.RELAY: "rgba(148, 103, 189, 0.14)",
    Channel.CONTROL: "rgba(127, 127, 127, 0.12)",
    Channel.OTHER: "rgba(255, 255, 255, 0)",
}


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    cell = lambda c: str(c).replace("|", "\\|") or " "  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def _text(s: str) -> str:
    return s.replace("#", "no. ").replace(";", ",")


def participant(lane: Lane) -> str:
    """A lane's Mermaid id: node names have hyphens, which Mermaid reads as arrows."""
    ident = re.sub(r"\W", "_", lane.node)
    return ident if ident[0].isalpha() else f"host_{ident}"


def mermaid(ladder: Ladder) -> str:
    """The ladder as a Mermaid sequence diagram: one line per step, drops as crosses at the router."""
    ids = {lane.node: participant(lane) for lane in ladder.lanes}
    lines = ["sequenceDiagram"]
    lines += [f"    participant {ids[ln.node]} as {_text(ln.node)}<br>{_text(' / '.join(ln.addresses))}"
              for ln in ladder.lanes]
    ends = f"{ids[ladder.lanes[0].node]},{ids[ladder.lanes[-1].node]}"
    noted = ladder.introduction is None
    channel = None
    for step in ladder.steps():
        a = step.first
        if not noted and a.sent > ladder.introduction:
            if channel is not None:
                lines.append("    end")
                channel = None
            lines.append(f"    Note over {ends}: introduction at +{ladder.introduction:.3f}s: "
                         "each peer now knows the other's public endpoint")
            noted = True
        if a.channel is not channel:
            if channel is not None:
                lines.append("    end")
            lines.append(f"    rect {RECT[a.channel]}")
            channel = a.channel
        arrow = "-x" if a.dropped else "->>"
        lines.append(f"    {ids[a.src]}{arrow}{ids[a.dst]}: +{a.sent:.3f}s {_text(step.label)}")
    if channel is not None:
        lines.append("    end")
    if not noted:
        lines.append(f"    Note over {ends}: introduction at +{ladder.introduction:.3f}s")
    return "\n".join(lines)


def _verdict_part(run_id: str, verdict: Verdict) -> list[str]:
    return [
        f"# Run {run_id}",
        f"Verdict: **{verdict_summary(verdict)}** (decided from the pcaps alone).",
        markdown_table(verdict_rows(verdict), VERDICT_HEADER),
        *(["\n".join(f"- {line.strip()}" for line in path_lines(verdict))] if verdict.paths else []),
    ]


def _ladder_part(ladder: Ladder, picture: str, explained: str, ladder_scope: str | None) -> list[str]:
    return [
        "## The run as a ladder",
        (f"The ladder shows {ladder_scope} only; the verdict, the NAT translations and the flows cover "
         "every pair. " if ladder_scope else "") + explained
        + f" The same ladder with times to scale is [{picture}]({picture}), below.",
        "```mermaid\n" + mermaid(ladder) + "\n```",
        f"![the ladder to scale]({picture})",
    ]


def _tables_part(flows: list[Flow], translations: list[Translation], files: dict[str, str]) -> list[str]:
    return [
        "## NAT translations",
        "Reconstructed from each router's LAN and WAN captures: a datagram seen on both sides shows "
        "the rewrite. *out*/*in*: datagrams LAN→WAN / WAN→LAN.",
        markdown_table(nat_rows(translations), NAT_HEADER) if translations else "No datagram crossed a router.",
        *(["Through two NATs (a home router, then its carrier):\n\n" + "\n".join(f"- {c}" for c in two)]
          if (two := chains(translations)) else []),
        "## Flows",
        "One direction of a 5-tuple at one capture point, split by role (decoded from the lab's protocol); "
        "times since the run's first packet.",
        markdown_table(flow_rows(flows), FLOW_HEADER),
        "## Files",
        "\n".join(f"- {what}: `{name}`" for what, name in files.items()),
    ]


def render_report(
    run_id: str,
    verdict: Verdict,
    ladder: Ladder,
    flows: list[Flow],
    translations: list[Translation],
    picture: str,
    files: dict[str, str],
    ladder_scope: str | None = None,
) -> str:
    """The whole report.md. `picture` is the ladder.png beside it, `files` the other files there
    (what it is -> file name); `ladder_scope` says which part of the run the ladder shows, when not all
    of it (e.g. "pair 1 of 50")."""
    explained = (
        f"One arrow per lab datagram ({len(ladder.arrows)} in all), consecutive ones of a kind as one line; "
        "a cross (`-x`) stops where a router dropped it. Shaded stretches: via the broker (blue), "
        "direct path (green), via the relay (purple: TURN, and what it relayed), control experiments (grey).")
    parts = [*_verdict_part(run_id, verdict), *_ladder_part(ladder, picture, explained, ladder_scope),
             *_tables_part(flows, translations, files)]
    return "\n\n".join(parts) + "\n"


PATH_HEADER = ["pair", "path", "first direct datagram", "bytes from then on: direct / relayed", "relayed by"]


def path_rows(paths: list[ProgramPath]) -> list[list[str]]:
    rows = []
    for p in paths:
        firsts = ", ".join(f"to {label} at +{t:.3f}s" if t is not None else f"to {label} never"
                           for label, t in p.first_direct.items())
        if p.upgraded_at is not None:
            firsts += f" (relayed until then: upgraded at +{p.upgraded_at:.3f}s)"
        by = sorted({node for a in p.arrivals for node in a.relayed_by})
        rows.append([str(p.number), p.path, firsts, f"{p.after_direct['direct']} / {p.after_direct['relayed']}",
                     ", ".join(by) or "-"])
    return rows


def render_program_report(
    run_id: str,
    verdict: Verdict,
    paths: list[ProgramPath],
    ladder: Ladder,
    flows: list[Flow],
    translations: list[Translation],
    pictures: tuple[str, str],
    files: dict[str, str],
    ladder_scope: str | None = None,
) -> str:
    """report.md of a run of the user's programs: the verdict, the path of each pair and the bytes of
    each path over time (`pictures`: paths.png, ladder.png beside it), the ladder of flows, the NAT
    translations and flows at every capture point."""
    plot, picture = pictures
    explained = (
        f"One arrow per flow ({len(ladder.arrows)} in all): the datagrams of one protocol from one host's port "
        "to another's, end to end through the NATs, drawn at its first datagram and labelled with how many "
        "there were; a cross (`-x`) stops where a router dropped them. Shaded stretches: between the peers "
        "(green), through the relay or the WAN host (purple), to the broker (blue).")
    parts = [
        *_verdict_part(run_id, verdict),
        "## Paths",
        "Read at each peer's router's LAN: `direct` from the partner's public address, `relayed` from the "
        "relay (TURN data) or the WAN host (what the partner sent it). The answer is the path that carried "
        "more bytes from the later first direct datagram on.",
        markdown_table(path_rows(paths), PATH_HEADER),
        f"![bytes per path per second]({plot})",
        *_ladder_part(ladder, picture, explained, ladder_scope),
        *_tables_part(flows, translations, files),
    ]
    return "\n\n".join(parts) + "\n"
