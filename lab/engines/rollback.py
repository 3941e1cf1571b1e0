"""A lab-up that fails leaves nothing it made: the one rollback every engine and the CLI use.

Ctrl-C and SIGTERM are failures too (SIGTERM is turned into Ctrl-C while a lab comes up, so that
`kill` of the CLI cleans up as Ctrl-C does), and a second Ctrl-C cannot cut the cleanup short.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from lab.errors import Progress


@contextmanager
def handling(sig: signal.Signals, handler) -> Iterator[None]:
    """Run the block with `handler` for `sig` (main thread only, where Python handles signals)."""
    previous = signal.signal(sig, handler)
    try:
        yield
    finally:
        signal.signal(sig, previous)


def interrupt(*_: object) -> None:
    """SIGTERM as Ctrl-C: `kill` of the CLI cleans up as Ctrl-C does."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def undone_on_failure(undo: Callable[[], None], progress: Progress) -> Iterator[None]:
    """Run the block; if it raises anything, Ctrl-C included, call `undo` (with Ctrl-C ignored), then re-raise."""
    try:
        with handling(signal.SIGTERM, interrupt) if _main_thread() else nullcontext():
            yield
    except BaseException:
        with handling(signal.SIGINT, signal.SIG_IGN) if _main_thread() else nullcontext():
            progress("lab-up failed: removing what it created")
            undo()
        raise
