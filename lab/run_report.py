"""The report of one run, written beside its pcaps: report.md, ladder.png and merged.pcapng.

Everything is read from the run directory (pcaps and run.json), so a report can be rewritten for
any past run without the lab (`make report RUN=<id>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.flows import flows
from lab.journeys import journeys
from lab.ladder import build_ladder
from lab.ladder_png import draw_ladder
from lab.merged_capture import MERGED_NAME, merge_captures
from lab.nat_table import nat_table
from lab.report import capture_summary
from lab.report_md import render_report
from lab.verdict import Verdict, read_run


@dataclass(frozen=True)
class ReportFiles:
    report: Path
    ladder: Path
    merged: Path


def write_report(run_dir: Path, verdict: Verdict) -> ReportFiles:
    """Write the three report files of the run in `run_dir`, given its verdict."""
    record, view = read_run(run_dir)
    trips = journeys(view.caps)
    punch_pairs = view.topology.punch_pairs
    scope = None
    if len(punch_pairs) == 1:
        ladder = build_ladder(view, trips)
    else:  # hundreds of lanes would draw nothing readable: the ladder is pair 1's story
        first = view.for_pair(punch_pairs[0])
        ladder = build_ladder(first, journeys(first.caps))
        scope = f"pair 1 of {len(punch_pairs)}"
    files = ReportFiles(run_dir / "report.md", run_dir / "ladder.png", run_dir / MERGED_NAME)
    merge_captures(run_dir, files.merged)
    draw_ladder(ladder, record["run_id"] + (f", {scope}" if scope else ""), files.ladder)
    names = {
        "the ladder, times to scale": files.ladder.name,
        "every capture point in one file, vantage point = interface name": files.merged.name,
        "the checks with their evidence": "verdict.json",
        "topology, settings and the peers' own reports": "run.json",
    }
    text = render_report(
        record["run_id"], verdict, ladder, flows(view), nat_table(view, trips), files.ladder.name, names, scope
    )
    files.report.write_text(text)
    return files


def summary(run_dir: Path) -> str:
    """The flows and NAT tables of a run, for the terminal."""
    _, view = read_run(run_dir)
    return capture_summary(flows(view), nat_table(view, journeys(view.caps)))
