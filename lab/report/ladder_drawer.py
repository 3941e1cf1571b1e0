"""ladder.png drawn by a process of its own, so that the report does not wait for matplotlib.

Importing matplotlib and drawing the ladder take a second or more, the largest part of a big
lab's report; the machine's second core can do it meanwhile. A LadderDrawer starts its process
at once (`python -m lab.report.ladder_drawer`), which imports matplotlib while the CLI reads the pcaps and
makes the verdict; draw() then hands it the ladder, pickled through its stdin, and wait() reads
back the outcome from its stdout. A fresh interpreter rather than a fork: after a punch test the
CLI process may hold the lab's threads, whose locks a forked child would inherit.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from lab.paths import PROJECT_DIR

if TYPE_CHECKING:  # the CLI starts the process first thing: nothing of the analysis is needed for that
    from lab.analysis.ladder import Ladder



class LadderDrawer:
    """One process that draws one ladder; a context manager that ends it."""

    def __init__(self) -> None:
        path = [str(PROJECT_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]
        self._proc = subprocess.Popen([sys.executable, "-m", "lab.report.ladder_drawer"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(path)})
        self._given = False

    def draw(self, ladder: Ladder, title: str, out: Path) -> None:
        """Hand `ladder` over to be drawn into `out` (PNG)."""
        assert self._proc.stdin is not None
        self._given = True
        with self._proc.stdin as job:
            pickle.dump((ladder, title, out.resolve()), job)

    def wait(self) -> Path:
        """The drawn file, once written; the drawing's exception if it failed."""
        assert self._proc.stdout is not None
        with self._proc.stdout as result:
            outcome = result.read()
        if self._proc.wait() != 0 or not outcome:
            raise RuntimeError(f"the ladder drawing process failed (exit status {self._proc.returncode})")
        drawn = pickle.loads(outcome)
        if isinstance(drawn, BaseException):
            raise drawn
        return drawn

    def close(self, abandon: bool = False) -> None:
        """End the process: at once if it has no ladder or is abandoned (the caller failed), else
        once it has drawn."""
        if self._proc.poll() is None and (abandon or not self._given):
            self._proc.kill()
        self._proc.wait()  # its outcome is a few bytes: the pipe holds them until closed here
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(abandon=kind is not None)


def main() -> None:
    """The drawing process: import matplotlib, then draw the one ladder that comes on stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # on ^C the CLI that started it ends it
    job: list[bytes] = []
    reader = threading.Thread(target=lambda: job.append(sys.stdin.buffer.read()))
    reader.start()  # takes the ladder as it comes, so the CLI never waits on a full pipe
    from lab.report.ladder_png import draw_ladder  # the slow part, done before the ladder arrives

    result, sys.stdout = sys.stdout.buffer, sys.stderr  # stdout carries the outcome only
    reader.join()
    if not job[0]:  # closed without a ladder: nothing to draw
        return
    try:
        ladder, title, out = pickle.loads(job[0])
        outcome: object = draw_ladder(ladder, title, out)
    except Exception as exc:  # noqa: BLE001  handed back to the report, which decides
        outcome = exc
    try:
        payload = pickle.dumps(outcome)
    except Exception:  # noqa: BLE001  an exception that does not pickle: its text will do
        payload = pickle.dumps(RuntimeError(repr(outcome)))
    result.write(payload)
    result.flush()


if __name__ == "__main__":
    main()
