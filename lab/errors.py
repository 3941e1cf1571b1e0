"""What every layer of the host's lab reports with: errors the user can act on, and progress lines."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """A failure the user can act on; the CLI prints it without a traceback."""
