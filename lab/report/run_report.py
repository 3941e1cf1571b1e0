"""The report of one run, written beside its pcaps: report.md, ladder.png and merged.pcapng (and for a
run of the user's programs paths.png, the bytes of each path over time).

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
from lab.analysis.ladder import build_ladder, flow_ladder
from lab.analysis.nat_table import nat_table
from lab.analysis.packets import TCP, UDP
from lab.analysis.program_paths import program_paths
from lab.analysis.run import LoadedRun, read_run
from lab.analysis.verdict import Verdict
from lab.report.ladder_drawer import LadderDrawer
from lab.report.markdown import render_program_report, render_report
from lab.report.merged_pcapng import MERGED_NAME, merge_captures
from lab.report.terminal import capture_summary
from lab.run_format import PROGRAMS_KIND, RUN_RECORD, VERDICT_FILE


@dataclass(frozen=True)
class ReportFiles:
    report: Path
    ladder: Path
    merged: Path
    paths: Path | None = None  # a run of the user's programs: bytes per path per second


class RunReport:
    """A run's report, begun as soon as the run is read and written once its verdict is known.

    Begun, it hands its ladder to the drawer, whose process draws it while the verdict is made: for
    a big lab that hides most of the report's time. Beginning never raises: a report that cannot be
    made fails when written, and the verdict made meanwhile stands.
    """

    def __init__(self, run: LoadedRun, drawer: LadderDrawer | None = None) -> None:
        self.run, self.drawer = run, drawer
        self.programs = run.record.get("kind") == PROGRAMS_KIND
        self.protocols = (UDP, TCP) if self.programs else (UDP,)  # the user's programs may speak TCP
        self.files = ReportFiles(run.dir / "report.md", run.dir / "ladder.png", run.dir / MERGED_NAME,
                                 run.dir / "paths.png" if self.programs else None)
        self._failure: Exception | None = None
        try:
            view = run.view
            punch_pairs = view.topology.punch_pairs
            self.scope = None
            ladder_of = flow_ladder if self.programs else build_ladder  # any program's flows, or lab datagrams
            if len(punch_pairs) == 1:
                self.ladder = ladder_of(view, self.trips)
            else:  # hundreds of lanes would draw nothing readable: the ladder is pair 1's story
                first = view.for_pair(punch_pairs[0])
                self.ladder = ladder_of(first, journeys(first.caps, self.protocols))
                self.scope = f"pair 1 of {len(punch_pairs)}"
            self.title = run.record["run_id"] + (f", {self.scope}" if self.scope else "")
            if drawer is not None:
                drawer.draw(self.ladder, self.title, self.files.ladder)
        except Exception as exc:  # noqa: BLE001  raised by write(), after the verdict
            self._failure = exc

    @cached_property
    def trips(self) -> list[Journey]:
        """Every datagram's journey: the NAT tables' source (and the ladder's, with one punch pair)."""
        return journeys(self.run.view.caps, self.protocols)

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
        translations = nat_table(view, self.trips)
        if self.programs:
            from lab.report.paths_png import draw_paths  # matplotlib, as the ladder

            paths = program_paths(view)
            draw_paths(paths, f"run {self.run.record['run_id']}: bytes per path", files.paths)
            names["topology, settings and the peers' own reports"] = RUN_RECORD + " (how each program ended)"
            names["each program's output"] = ", ".join(sorted(p.name for p in self.run.dir.glob("*.log")))
            text = render_program_report(self.run.record["run_id"], verdict, paths, self.ladder, flows(view),
                                         translations, (files.paths.name, files.ladder.name), names, self.scope)
        else:
            text = render_report(self.run.record["run_id"], verdict, self.ladder, flows(view), translations,
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
