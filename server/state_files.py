"""The files the broker keeps on its node, for the other programs that run there.

The broker key (server.broker_key mints room secrets from it), the broker's pid and its latest
statistics (server.status reads them), and in standalone mode its ready marker. They live in the
node's own run directory where the engine gives it one (NATLAB_RUN_DIR: nodes that share one
filesystem), else in /run/natlab-broker; the key among the node's secrets, which no other node
sees (node.settings.private_file). --state-dir overrides all of them, for a broker run by hand or
by a test.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.settings import RUN_DIR_ENV, private_file

DEFAULT_DIR = Path("/run/natlab-broker")


def state_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    run_dir = os.environ.get(RUN_DIR_ENV)
    return Path(run_dir) if run_dir else DEFAULT_DIR


def key_file(explicit: str | Path | None = None) -> Path:
    """The broker key: in --state-dir when one is given, else among the node's secrets (private_file)."""
    return Path(explicit) / "broker.key" if explicit else private_file("broker.key")


def pid_file(directory: Path) -> Path:
    return directory / "broker.pid"


def stats_file(directory: Path) -> Path:
    return directory / "broker-stats.json"


def ready_file(directory: Path) -> Path:
    return directory / "broker.ready"
