"""Where the project and its runs are on the host: the code the nodes run, and the captures."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ("lab", "nat", "node", "peers", "relay", "server", "wire")  # the project's code (the Makefile compiles them too)


def captures_root() -> Path:
    """Where runs are written: NATLAB_CAPTURES, else captures/ in the project."""
    return Path(os.environ.get("NATLAB_CAPTURES", PROJECT_DIR / "captures"))
