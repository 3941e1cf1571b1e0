"""The traversal matrix: one pair per cell, each with its own NATs, what theory predicts for it beside
what its pcaps show; the pairs are the lab's punch peers or the user's programs (`make matrix A= B=`).

A cell is one ordered pair of settings (a's NAT × b's NAT, and the link of both sides) in one shape of
the internet (lab.topology.SHAPES: a standard or cgnat cell has both NATs, behind the carrier's for
cgnat; a public-peer or same-lan cell has a's alone, its column ONE_NAT_COLUMNS names b's place). Its
expected path comes from nat.traversal (the peer's strategy played against both NATs' RFC 4787
behaviours) and the relay: for the lab's peers their relay mode; for programs, whether any relay
was offered them (TURN credentials, a WAN program). Its observed path, from the pair's own view of
the captures in every run (lab.analysis.paths, or lab.analysis.program_paths for programs); the
time is from the pair's last introduction (programs: the later of the two programs' start) to
the path carrying both ways. A run of a cell holds when it observed the expected path and the
pair passed every other check of its verdict (a path read off captures whose controls failed
proves nothing: a router without its firewall is caught so), but those that need a session where
none opened. A cell agrees when every run held; its rate is the share of runs that did. With
programs, a disagreement is where the user's stack falls short of (or beats) what the NATs allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.analysis.journeys import journeys
from lab.analysis.ladder import build_ladder, flow_ladder
from lab.analysis.packets import TCP, UDP
from lab.analysis.paths import DIRECT, FAILED, RELAYED, Expected, expected_path, message_arrivals
from lab.analysis.program_paths import NONE
from lab.analysis.program_verdict import judge_programs
from lab.analysis.run import LoadedRun, RunView
from lab.analysis.verdict import judge
from lab.run_format import PROGRAMS_KIND
from lab.topology import ONE_NAT_COLUMNS, STANDARD, PunchPair
from wire.protocol import Data, Intro, Probe

PATH_CHECK = "3"  # the verdict's check of the path: the matrix compares the paths themselves
NEEDS_A_SESSION = ("2",)  # checks that cannot pass where no path opened (nothing crossed to skip the server)
PROGRAM_PATH_CHECK = "1"  # the programs' verdict's (lab.analysis.program_verdict)
PROGRAMS_ENDED = ("3",)  # a program that found no path may well fail: that is the path's story, told already
CLOCKS = {False: "the introduction", True: "the programs' start"}  # what a cell's time counts from

def columns(shape: str, nats: tuple[str, ...]) -> tuple[str, ...]:
    """A shape's grid columns: b's NATs, or the one place a b without a NAT of its own has."""
    return (ONE_NAT_COLUMNS[shape],) if shape in ONE_NAT_COLUMNS else nats


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
    programs: tuple[str, ...] = ()  # how the pair's programs ended (a matrix of the user's programs)

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
    shape: str = STANDARD

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.nat_a, self.nat_b, self.link, self.shape)

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
        return {"shape": self.shape, "nat_a": self.nat_a, "nat_b": self.nat_b, "link": self.link,
                "expected": self.expected,
                "reason": self.reason, "observed": self.observed, "agree": self.agree, "rate": self.rate,
                "seconds": self.seconds,
                "failed_checks": list(self.failed_checks),
                "runs": [{"run": o.run_id, "pair": o.pair, "path": o.path, "seconds": o.seconds,
                          "failed_checks": list(o.failed_checks), "programs": list(o.programs),
                          "evidence": list(o.evidence),
                          "ladder": list(o.ladder)} for o in self.observations]}


@dataclass
class Matrix:
    nats: tuple[str, ...]
    links: tuple[str, ...]
    relay: str
    cells: dict[tuple[str, str, str, str], Cell] = field(default_factory=dict)
    programs: dict[str, str] | None = None  # the user's command lines (a, b, wan), or None: the lab's peers
    shapes: tuple[str, ...] = (STANDARD,)

    @property
    def clock(self) -> str:
        return CLOCKS[self.programs is not None]

    def cell(self, nat_a: str, nat_b: str, link: str, shape: str = STANDARD) -> Cell | None:
        return self.cells.get((nat_a, nat_b, link, shape))

    def grids(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """Each grid the matrix draws: (shape, link, its columns), shapes first; its rows are always a's NATs."""
        return [(shape, link, columns(shape, self.nats)) for shape in self.shapes for link in self.links]

    @property
    def disagreements(self) -> list[Cell]:
        return [c for c in self.cells.values() if not c.agree]

    def to_json(self) -> dict:
        return {"nats": list(self.nats), "links": list(self.links), "shapes": list(self.shapes), "relay": self.relay,
                "programs": self.programs,
                "seconds_since": self.clock,
                "cells": [c.to_json() for c in self.cells.values()],
                "agree": not self.disagreements}


def introduced_at(view: RunView, pp: PunchPair) -> float | None:
    """When both peers had their introduction: the later of the first introduction to reach each
    peer's LAN. Not the broker's last one: on a lossy link a peer whose introduction was lost
    registers again, and an introduction sent after the punch would start the clock late."""
    firsts = []
    for side in pp.sides:
        private = str(side.private_ip)
        times = [p.time for p in view.lan(side) if isinstance(p.msg, Intro) and p.dst == private]
        firsts.append(min(times) if times else None)
    if None not in firsts:
        return max(firsts)  # type: ignore[type-var]
    intros = view.introductions()  # a run without LAN captures of them: the broker's word
    return max(p.time for p in intros) if intros else None


def time_to_path(view: RunView, pp: PunchPair, path: str) -> float | None:
    """Seconds from the pair's introduction (introduced_at) to the first probe or data that reached either
    peer by `path` (direct: from the partner's public address; relayed: inside the relay's framing)."""
    since = introduced_at(view, pp)
    if since is None or path not in (DIRECT, RELAYED):
        return None
    firsts = [p.time for sender, receiver in ((pp.b, pp.a), (pp.a, pp.b))
              for p, way in message_arrivals(view, sender, receiver, (Probe, Data)) if way == path and p.time >= since]
    return round(min(firsts) - since, 6) if firsts else None


def program_expectation(pp: PunchPair, config: dict) -> Expected:
    """What the NATs allow the user's programs: direct where theory opens a direct path, else the relayed
    path if a relay was offered them (TURN credentials, or a WAN program, which may relay), else none."""
    offered = [what for what, given in (("the lab's TURN relay", config.get("relay", "auto") != "off"),
                                        ("the WAN program", bool(config.get("wan")))) if given]
    expected = expected_path(pp, "auto" if offered else "off")
    if expected.path == RELAYED:
        return Expected(RELAYED, f"{expected.reason}; offered {' and '.join(offered)}")
    return expected


def program_time_to_path(run: LoadedRun, pp: PunchPair, row: dict) -> float | None:
    """Seconds from the later of the pair's two programs' start to their path carrying both ways."""
    starts = [run.record.get("programs", {}).get(side.label, {}).get("started_at") for side in pp.sides]
    if row.get("opened_at") is None or None in starts:
        return None
    return round(row["opened_at"] - max(starts), 6)


def ladder_lines(view: RunView, flows: bool = False) -> tuple[str, ...]:
    """A pair's ladder as text: one line per step, as the report's Mermaid draws them (programs: per flow)."""
    ladder = flow_ladder(view, journeys(view.caps, (UDP, TCP))) if flows else build_ladder(view, journeys(view.caps))
    return tuple(f"+{s.first.sent:.3f}s {s.first.src} → {s.first.dst}: {s.label}" for s in ladder.steps())


def observe(matrix: Matrix, run: LoadedRun) -> None:
    """Add one run's pairs to the matrix's cells (a pair's settings say which cell it is)."""
    programs = run.record.get("kind") == PROGRAMS_KIND
    verdict = judge_programs(run) if programs else judge(run)
    rows = {row["pair"]: row for row in verdict.paths}
    alone = len(run.view.topology.punch_pairs) == 1
    for pp, view in run.view.per_pair():
        a, b, shape = pp.a.router, pp.b.router, pp.shape
        key = (a.nat or "", ONE_NAT_COLUMNS.get(shape) or b.nat or "", a.link or "", shape)
        row = rows[pp.number]
        if programs:
            expected = program_expectation(pp, run.record["config"])
            path = FAILED if row["path"] == NONE else row["path"]
            seconds = program_time_to_path(run, pp, row)
            ignored = {PROGRAM_PATH_CHECK, *(PROGRAMS_ENDED if path == FAILED else ())}
        else:
            expected, path = Expected(row["expected"], row["reason"]), row["path"]
            seconds = time_to_path(view, pp, path)
            ignored = {PATH_CHECK, *(NEEDS_A_SESSION if path == FAILED else ())}
        cell = matrix.cells.setdefault(key, Cell(*key[:3], expected.path, expected.reason, shape=shape))
        evidence = tuple(f"{c.id} {c.title}: {line}" for c in verdict.checks for line in c.evidence
                         if alone or line.startswith(f"{pp.name}: "))  # a lab of pairs prefixes each pair's
        failed = tuple(c.id for c in verdict.checks if c.id not in ignored and not c.ok
                       and (alone or pp.number in c.failed_pairs))
        cell.observations.append(Observation(run.record["run_id"], pp.number, path, seconds, evidence,
                                             ladder_lines(view, programs), failed, programs_ended(run, pp)))


def programs_ended(run: LoadedRun, pp: PunchPair) -> tuple[str, ...]:
    """How each of the pair's programs ended, with its output's first line: a program that could not
    start shows here, even in a cell where no path was expected."""
    lines = []
    for side in pp.sides:
        result = run.record.get("programs", {}).get(side.label)
        if result is not None:
            code = f" with {result.get('exit_code')}" if result.get("ended") == "exited" else ""
            head = (result.get("head") or [""])[0]
            lines.append(f"{side.label}: {result.get('ended')}{code} after {result.get('seconds')}s"
                         + (f": {head}" if head else ""))
    return tuple(lines)


def all_programs_failed(matrix: Matrix) -> str | None:
    """When no program of the matrix exited 0, the first such ending: a program that cannot run at all
    (a wrong path, a missing file) fails every cell alike, which is no finding about the NATs."""
    endings = [line for c in matrix.cells.values() for o in c.observations for line in o.programs]
    if not endings or any(": exited with 0 " in line for line in endings):
        return None
    return endings[0]
