"""The report of one run, written beside its pcaps: report.md, ladder.png and merged.pcapng.

Everything is read from the run directory (pcaps and run.json), so a report can be rewritten for
any past run without the lab (`make report RUN=<id>`). Right after a verdict the run it read is
passed in, since reading a big lab's pcaps is a good part of the work.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from lab.analysis.flows import flows
from lab.analysis.journeys import Journey, journeys
from lab.analysis.ladder import build_ladder
from lab.analysis.nat_table import nat_table
from lab.analysis.run import LoadedRun, read_run
from lab.analysis.verdict import Verdict
from lab.report.ladder_drawer import LadderDrawer
from lab.report.markdown import render_report
from lab.report.merged_pcapng import MERGED_NAME, merge_captures
from lab.report.terminal import capture_summary
from lab.run_format import RUN_RECORD, VERDICT_FILE


@dataclass(frozen=True)
class ReportFiles:
    report: Path
    ladder: Path
    merged: Path


class RunReport:
    """A run's report, begun as soon as the run is read and written once its verdict is known.

    Begun, it hands its ladder to the drawer, whose process draws it while the verdict is made: for
    a big lab that hides most of the report's time. Beginning never raises: a report that cannot be
    made fails when written, and the verdict made meanwhile stands.
    """

    def __init__(self, run: LoadedRun, drawer: LadderDrawer | None = None) -> None:
        self.run, self.drawer = run, drawer
        self.files = ReportFiles(run.dir / "report.md", run.dir / "ladder.png", run.dir / MERGED_NAME)
        self._failure: Exception | None = None
        try:
            view = run.view
            punch_pairs = view.topology.punch_pairs
            self.scope = None
            if len(punch_pairs) == 1:
                self.ladder = build_ladder(view, self.trips)
            else:  # hundreds of lanes would draw nothing readable: the ladder is pair 1's story
                first = view.for_pair(punch_pairs[0])
                self.ladder = build_ladder(first, journeys(first.caps))
                self.scope = f"pair 1 of {len(punch_pairs)}"
            self.title = run.record["run_id"] + (f", {self.scope}" if self.scope else "")
            if drawer is not None:
                drawer.draw(self.ladder, self.title, self.files.ladder)
        except Exception as exc:  # noqa: BLE001  raised by write(), after the verdict
            self._failure = exc

    @cached_property
    def trips(self) -> list[Journey]:
        """Every datagram's journey: the NAT tables' source (and the ladder's, with one punch pair)."""
        return journeys(self.run.view.caps)

    def write(self, verdict: Verdict) -> ReportFiles:
        """Write the three report files beside the run's pcaps."""
        if self._failure is not None:
            raise self._failure
        files, view = self.files, self.run.view
        if self.drawer is None:
            from lab.report.ladder_png import draw_ladder  # matplotlib: loaded only where it draws

            draw_ladder(self.ladder, self.title, files.ladder)
        merge_captures(self.run.dir, files.merged, self.run.captures)
        names = {
            "the ladder, times to scale": files.ladder.name,
            "every capture point in one file, vantage point = interface name": files.merged.name,
            "the checks with their evidence": VERDICT_FILE,
            "topology, settings and the peers' own reports": RUN_RECORD,
        }
        text = render_report(self.run.record["run_id"], verdict, self.ladder, flows(view), nat_table(view, self.trips),
                             files.ladder.name, names, self.scope)
        files.report.write_text(text)
        if self.drawer is not None:
            self.drawer.wait()
        return files


def write_report(run_dir: Path, verdict: Verdict, run: LoadedRun | None = None) -> ReportFiles:
    """Write the three report files of the run in `run_dir`, given its verdict (and the run as the
    verdict read it, if at hand); the ladder is drawn in this process."""
    return RunReport(run or read_run(run_dir)).write(verdict)


def summary(run_dir: Path) -> str:
    """The flows and NAT tables of a run, for the terminal."""
    view = read_run(run_dir).view
    return capture_summary(flows(view), nat_table(view, journeys(view.caps)))
