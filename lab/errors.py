"""What every layer of the host's lab reports with: errors the user can act on, and progress lines."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """A failure the user can act on; the CLI prints it without a traceback."""


class DiskFull(LabError):
    """The disk filled while a run was written: the CLI takes the lab down, so that nothing is left half-done."""


def disk_full(exc: BaseException) -> bool:
    """Whether a write failed because its disk (or the user's quota) is full; shutil.copytree's error
    gathers its files' failures as text."""
    if isinstance(exc, shutil.Error):
        return any(os.strerror(errno.ENOSPC) in str(why) for *_, why in exc.args[0])
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
