"""Check 0, "captures are complete": whether each vantage point's pcap holds the whole run, proven
before any check that passes on the absence of packets is believed.

A capture is complete when its pcap is there and whole (a record cut short is refused on reading);
its agent's account (captures.json, node.capture_agent's STATS) says the kernel dropped none of its
frames and the file holds every frame the agent wrote; and the pcap itself holds its start marker
and, later, its end marker (wire.capture_marker): the capture was live before the run's story
began and still live when it ended. A check that passes on absence ("no packet of the peers
reached the broker") proves nothing if a capture it reads lost packets: it is then reported
inconclusive (and so not passed), naming the incomplete captures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lab.analysis.pcap_io import Capture
from lab.analysis.run import LoadedRun
from lab.analysis.verdict import Check, Verdict
from lab.run_format import CAPTURE_STATS
from wire.capture_marker import END, ETHERTYPE, START, parse_marker

CHECK_ID = "0"
SHOWN = 5  # incomplete captures named in the check's line; the evidence has them all


@dataclass(frozen=True)
class CaptureState:
    """One vantage point's capture, as its pcap and its agent's account tell it."""

    vantage: str
    frames: int
    drops: int | None  # the kernel's, None when not accounted
    problems: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.problems

    def line(self) -> str:
        drops = "drops not accounted" if self.drops is None else f"{self.drops} dropped by the kernel"
        return f"{self.vantage}: {self.frames} frames, {drops}; " + ("; ".join(self.problems) or "start and end markers")


def markers(capture: Capture, vantage: str) -> dict[str, float]:
    """When the capture's own markers were recorded: kind -> time."""
    seen: dict[str, float] = {}
    for frame in capture.frames:
        if frame.data[12:14] == ETHERTYPE and (marker := parse_marker(frame.data)) and marker[1] == vantage:
            seen.setdefault(marker[0], frame.time)
    return seen


def read_accounts(run: LoadedRun) -> tuple[dict[str, dict], str | None]:
    """The agents' accounts per vantage point, or why there are none."""
    path = run.dir / CAPTURE_STATS
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, f"no {CAPTURE_STATS} (a run from before natlab kept capture accounts, or one whose collection failed)"
    except (OSError, ValueError) as exc:
        return {}, f"{CAPTURE_STATS} does not read ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("vantages") or {}, dict):
        return {}, f"{CAPTURE_STATS} is not a capture account (no vantages)"
    errors = "; ".join(f"{node}: {why}" for node, why in (data.get("errors") or {}).items())
    return data.get("vantages") or {}, errors or None


def capture_states(run: LoadedRun, accounts: dict[str, dict]) -> list[CaptureState]:
    states = []
    for vantage in run.view.topology.vantages:
        capture = run.captures.get(vantage)
        if capture is None:
            states.append(CaptureState(vantage, 0, None, ("no pcap",)))
            continue
        problems = []
        account = accounts.get(vantage)
        drops = None
        if not isinstance(account, dict) or not isinstance(account.get("kernel_drops", 0), int):
            problems.append(f"not accounted in {CAPTURE_STATS}")
        else:
            drops = account.get("kernel_drops", 0)
            if drops:
                problems.append(f"the kernel dropped {drops} of its {account.get('kernel_packets')} frames")
            if account.get("written") != len(capture.frames):
                problems.append(f"its agent wrote {account.get('written')} frames, the file holds {len(capture.frames)}")
            problems += [f"marker not sent ({why})" for why in account.get("marker_errors") or []]
        seen = markers(capture, vantage)
        if START not in seen:
            problems.append("no start marker: not shown live before the run")
        if END not in seen:
            problems.append("no end marker: stopped early, or lost the end")
        elif START in seen and seen[END] < seen[START]:
            problems.append("its end marker precedes its start marker")
        states.append(CaptureState(vantage, len(capture.frames), drops, tuple(problems)))
    return states


def check_captures(states: list[CaptureState], unaccounted: str | None) -> Check:
    bad = [s for s in states if not s.complete]
    if bad:
        named = "; ".join(s.line() for s in bad[:SHOWN])
        more = f"; {len(bad) - SHOWN} more in the evidence" if len(bad) > SHOWN else ""
        detail = f"{len(bad)}/{len(states)} captures incomplete" + (f" ({unaccounted})" if unaccounted else "") + \
            f": {named}{more}"
    else:
        detail = (f"all {len(states)} captures whole: no frame dropped by the kernel, each pcap holds every "
                  "frame its agent wrote, between its own start and end markers")
    return Check(CHECK_ID, "captures are complete", not bad, detail, [s.line() for s in states])


def with_capture_check(run: LoadedRun, verdict: Verdict, on_absence: tuple[str, ...]) -> Verdict:
    """The verdict with check 0 first and each capture's account (verdict.json's `captures`); when a
    capture is incomplete, every check among `on_absence` (those that pass on the absence of
    packets) that passed is inconclusive instead, and every check that failed names the incomplete
    captures beside its failure (what it missed may be what a capture lost)."""
    accounts, unaccounted = read_accounts(run)
    states = capture_states(run, accounts)
    bad = [s.vantage for s in states if not s.complete]
    named = ', '.join(bad[:SHOWN])
    for check in verdict.checks:
        if bad and check.id in on_absence and check.ok:
            check.ok, check.inconclusive = False, True
            check.detail = (f"inconclusive: it passes on the absence of packets, and {len(bad)} capture(s) "
                            f"are incomplete (check 0: {named}); it saw: {check.detail}")
        elif bad and not check.ok:  # a packet the capture lost may be what it missed: say so beside the failure
            check.detail = f"{check.detail} (with {len(bad)} capture(s) incomplete, check 0: {named})"
    verdict.checks.insert(0, check_captures(states, unaccounted))
    verdict.captures = {s.vantage: {"frames": s.frames, "kernel_drops": s.drops, "complete": s.complete}
                        for s in states}
    return verdict
