"""Where the project and its runs are on the host: the code the nodes run, and the captures."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ("lab", "nat", "node", "peers", "relay", "server", "wire")  # the project's code (the Makefile compiles them too)


def captures_root() -> Path:
    """Where runs are written: NATLAB_CAPTURES, else captures/ in the project."""
    return Path(os.environ.get("NATLAB_CAPTURES", PROJECT_DIR / "captures"))


RUNTIME_DIR = ".run"  # what labs make at run time, per lab (git-ignored)
MOUNT_ENV = "NATLAB_MOUNT"  # a host directory of the user's files for `make run` (MOUNT=)
USER_IMAGE_ENV = "NATLAB_NODE_IMAGE"  # NODE_IMAGE=: the user's image for the program nodes (Docker only)


def lab_runtime(project: str) -> Path:
    """A lab's own runtime directory on the host (relative to the project: compose files name it so)."""
    return Path(RUNTIME_DIR) / project


def mailbox_dir(project: str) -> Path:
    """The host directory behind every pair's signalling mailbox (one subdirectory per pair)."""
    return PROJECT_DIR / lab_runtime(project) / "mailbox"


def user_files() -> Path | None:
    """The user's files for `make run` (MOUNT), if given."""
    value = os.environ.get(MOUNT_ENV)
    return Path(value).resolve() if value else None
