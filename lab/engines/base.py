"""What a scenario needs from an engine, and nothing more.

An engine realises a Topology as running nodes (Docker containers, or bare network namespaces)
and offers these few primitives. Scenarios, captures and checks are written
against this protocol only, so they cannot tell which engine ran them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab.errors import Progress
from lab.topology import Topology


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class CaptureAgent:
    """One capture process (node.capture_agent): the node it runs in, its command, the directory it writes.

    Where agents run is the engine's business: one per captured node inside it (Docker), or one for
    the whole lab that opens each vantage point inside its namespace (netns). What they write is the same.
    """

    node: str
    argv: list[str]
    directory: str


class Engine(Protocol):
    name: str  # as ENGINE spells it
    topology: Topology

    def up(self, progress: Progress) -> None:
        """Create every node and network; return once every node reports ready."""

    def down(self, progress: Progress) -> None:
        """Remove everything up() created. Idempotent."""

    def is_up(self) -> bool: ...

    def exec(self, node: str, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        """Run a command inside a node and wait for it (commands bound their own time). `stdin`, if
        given, is its whole standard input: how secrets reach a node's program, never by argv."""

    def spawn(self, node: str, argv: list[str]) -> None:
        """Start a command inside a node in the background."""

    def copy_out(self, node: str, path: str, dest: Path) -> None:
        """Copy the files of directory `path` in the node into the host directory `dest`."""

    def set_forwarding(self, node: str, enabled: bool) -> None:
        """Turn IPv4 forwarding of a node on or off (nodes cannot write their own sysctls)."""

    def link_addresses(self, node: str) -> dict[str, str]:
        """Map each of the node's IPv4 addresses to its interface's MAC address."""

    def capture_agents(self) -> list[CaptureAgent]:
        """The capture processes that together record every vantage point of the topology."""

    def host_pids(self) -> list[int]:
        """The lab's own long-lived processes on the host, outside every node (make soak watches them)."""

    def program_paths(self) -> tuple[str, str]:
        """Where a peer's program sees (the lab's mailboxes, the user's files): `make run`'s two directories,
        the same on the host (mailbox_dir, MOUNT) whatever the engine."""
