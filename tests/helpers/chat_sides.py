"""Two chat sides under pseudo-terminals (pexpect): ending them together, cleaning them up."""

from __future__ import annotations

from collections.abc import Callable

import pexpect


def end_together(leaver: pexpect.spawn, leaver_label: str, other: pexpect.spawn,
                 how: Callable[[pexpect.spawn], object] = pexpect.spawn.sendeof) -> None:
    """`leaver` leaves (Ctrl-D by default): it says bye, the other side says so, both exit with 0."""
    how(leaver)
    leaver.expect_exact("*** bye")
    other.expect_exact(f"*** {leaver_label} left the chat")
    for side in (leaver, other):
        side.expect(pexpect.EOF)
        side.close()
        assert side.exitstatus == 0, side.before


def close_all(*sides: pexpect.spawn | None) -> None:
    for side in sides:
        if side is not None:
            side.close(force=True)
