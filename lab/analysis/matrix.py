"""The traversal matrix: one punch pair per cell, each with its own NATs, what theory predicts for it
beside what its pcaps show.

A cell is one ordered pair of settings (a's NAT × b's NAT, and the link of both sides). Its
expected path comes from nat.traversal (the peer's strategy played against both NATs' RFC 4787
behaviours) and the relay mode; its observed path, from the pair's own view of the captures
(lab.analysis.paths), in every run; the time is from the pair's last introduction to the first
datagram that arrived by the observed path. A run of a cell holds when it observed the expected
path and the pair passed every other check of its verdict (a path read off captures whose
controls failed proves nothing: a router without its firewall is caught so), but those that need
a session where none opened. A cell agrees when
every run held; its rate is the share of runs that did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.analysis.journeys import journeys
from lab.analysis.ladder import build_ladder
from lab.analysis.paths import DIRECT, FAILED, RELAYED, message_arrivals
from lab.analysis.run import LoadedRun, RunView
from lab.analysis.verdict import judge
from lab.topology import PunchPair
from wire.protocol import Data, Probe

PATH_CHECK = "3"  # the verdict's check of the path: the matrix compares the paths themselves
NEEDS_A_SESSION = ("2",)  # checks that cannot pass where no path opened (nothing crossed to skip the server)


@dataclass(frozen=True)
class Observation:
    """One run of one cell."""

    run_id: str
    pair: int  # the pair that was the cell in that run
    path: str
    seconds: float | None  # introduction -> first datagram on that path
    evidence: tuple[str, ...]  # the verdict's lines about the pair
    ladder: tuple[str, ...]  # the pair's ladder, one line per step
    failed_checks: tuple[str, ...] = ()  # the ids of the verdict's checks the pair failed, the path's aside

    def held(self, expected: str) -> bool:
        return self.path == expected and not self.failed_checks


@dataclass
class Cell:
    nat_a: str
    nat_b: str
    link: str
    expected: str
    reason: str
    observations: list[Observation] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.nat_a, self.nat_b, self.link)

    @property
    def observed(self) -> str:
        """The path seen in every run, or "mixed"."""
        paths = {o.path for o in self.observations}
        return paths.pop() if len(paths) == 1 else "mixed"

    @property
    def held(self) -> int:
        """How many runs saw the expected path with every other check passed."""
        return sum(o.held(self.expected) for o in self.observations)

    @property
    def rate(self) -> float:
        """The share of runs that held."""
        return self.held / max(1, len(self.observations))

    @property
    def failed_checks(self) -> tuple[str, ...]:
        """The checks (other than the path) that failed in some run."""
        return tuple(dict.fromkeys(c for o in self.observations for c in o.failed_checks))

    @property
    def agree(self) -> bool:
        return bool(self.observations) and self.rate == 1.0

    @property
    def seconds(self) -> float | None:
        """The median time to the path over the runs that had one."""
        times = sorted(o.seconds for o in self.observations if o.seconds is not None)
        return times[len(times) // 2] if times else None

    def to_json(self) -> dict:
        return {"nat_a": self.nat_a, "nat_b": self.nat_b, "link": self.link, "expected": self.expected,
                "reason": self.reason, "observed": self.observed, "agree": self.agree, "rate": self.rate,
                "seconds": self.seconds,
                "failed_checks": list(self.failed_checks),
                "runs": [{"run": o.run_id, "pair": o.pair, "path": o.path, "seconds": o.seconds,
                          "failed_checks": list(o.failed_checks), "evidence": list(o.evidence),
                          "ladder": list(o.ladder)} for o in self.observations]}


@dataclass
class Matrix:
    nats: tuple[str, ...]
    links: tuple[str, ...]
    relay: str
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)

    def cell(self, nat_a: str, nat_b: str, link: str) -> Cell | None:
        return self.cells.get((nat_a, nat_b, link))

    @property
    def disagreements(self) -> list[Cell]:
        return [c for c in self.cells.values() if not c.agree]

    def to_json(self) -> dict:
        return {"nats": list(self.nats), "links": list(self.links), "relay": self.relay,
                "cells": [c.to_json() for c in self.cells.values()],
                "agree": not self.disagreements}


def time_to_path(view: RunView, pp: PunchPair, path: str) -> float | None:
    """Seconds from the pair's last introduction to the first probe or data that reached either peer by
    `path` (direct: from the partner's public address; relayed: inside the relay's framing)."""
    intros = view.introductions()
    if not intros or path not in (DIRECT, RELAYED):
        return None
    since = max(p.time for p in intros)
    firsts = [p.time for sender, receiver in ((pp.b, pp.a), (pp.a, pp.b))
              for p, way in message_arrivals(view, sender, receiver, (Probe, Data)) if way == path and p.time >= since]
    return round(min(firsts) - since, 6) if firsts else None


def ladder_lines(view: RunView) -> tuple[str, ...]:
    """A pair's ladder as text: one line per step, as the report's Mermaid draws them."""
    ladder = build_ladder(view, journeys(view.caps))
    return tuple(f"+{s.first.sent:.3f}s {s.first.src} → {s.first.dst}: {s.label}" for s in ladder.steps())


def observe(matrix: Matrix, run: LoadedRun) -> None:
    """Add one run's pairs to the matrix's cells (a pair's settings say which cell it is)."""
    verdict = judge(run)
    rows = {row["pair"]: row for row in verdict.paths}
    alone = len(run.view.topology.punch_pairs) == 1
    for pp, view in run.view.per_pair():
        a, b = pp.a.router, pp.b.router
        key = (a.nat or "", b.nat or "", a.link or "")
        row = rows[pp.number]
        cell = matrix.cells.setdefault(key, Cell(*key, row["expected"], row["reason"]))
        evidence = tuple(f"{c.id} {c.title}: {line}" for c in verdict.checks for line in c.evidence
                         if alone or line.startswith(f"{pp.name}: "))  # a lab of pairs prefixes each pair's
        ignored = {PATH_CHECK, *(NEEDS_A_SESSION if row["path"] == FAILED else ())}
        failed = tuple(c.id for c in verdict.checks if c.id not in ignored and not c.ok
                       and (alone or pp.number in c.failed_pairs))
        cell.observations.append(Observation(run.record["run_id"], pp.number, row["path"],
                                             time_to_path(view, pp, row["path"]), evidence, ladder_lines(view),
                                             failed))
