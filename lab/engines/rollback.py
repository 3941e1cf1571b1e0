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


_interrupted = threading.Event()


def interrupt(*_: object) -> None:
    """Ctrl-C (and SIGTERM as Ctrl-C): raise KeyboardInterrupt, and remember that it came.

    Python drops an exception raised while a weakref callback or `__del__` runs ("Exception ignored
    in ..."): a Ctrl-C that lands there would be lost, and a lab-up would report itself up.
    """
    _interrupted.set()
    raise KeyboardInterrupt


def forget_interrupts() -> None:
    """A new command starts uninterrupted (the CLI's main may run more than once in one process)."""
    _interrupted.clear()


def interrupted() -> bool:
    """Whether a Ctrl-C or SIGTERM came, even one whose KeyboardInterrupt Python dropped."""
    return _interrupted.is_set()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def undone_on_failure(undo: Callable[[], None], progress: Progress) -> Iterator[None]:
    """Run the block; if it raises anything, Ctrl-C included, call `undo` (with Ctrl-C ignored), then re-raise."""
    try:
        with handling(signal.SIGTERM, interrupt) if _main_thread() else nullcontext():
            yield
            if interrupted():  # a Ctrl-C whose KeyboardInterrupt was dropped is still a Ctrl-C
                raise KeyboardInterrupt
    except BaseException:
        with handling(signal.SIGINT, signal.SIG_IGN) if _main_thread() else nullcontext():
            progress("lab-up failed: removing what it created")
            undo()
        raise
