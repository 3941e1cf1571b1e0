"""A node's own mount namespace, where nodes share one filesystem (the netns engine): the secrets of
a node that keeps them (the broker's key, the relay's TURN secret) live in a tmpfs that only the
node's processes see. The other nodes stay in the host's mount namespace, where it is empty.

The node's first process makes the namespace (private_mount): every mount of the host stays (as a
slave: later host mounts still arrive, nothing mounted here goes back), and one tmpfs, mode 0700,
covers the node's private directory. Elsewhere (the host, every other node) that directory stays
empty. Every later process of the node joins it (join) by the first one's /proc/<pid>/ns/mnt.

What this keeps out is any ordinary read of another node's files: a program that lists or opens
the broker's directory from a peer finds nothing. It is not a wall against a root program set on
crossing it: netns nodes are root in one PID namespace, and /proc/<pid>/root leads into any
process's mounts. Docker's nodes are containers: their files are their own already.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.netns import libc, libc_check

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
PRIVATE_SIZE = "4m"  # keys and a config file


def private_mount(directory: str | Path) -> None:
    """Move this (single-threaded) process into a new mount namespace with a tmpfs of its own over
    `directory`, which must exist."""
    libc_check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    libc_check(libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    libc_check(libc.mount(b"tmpfs", str(directory).encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          f"mode=0700,size={PRIVATE_SIZE}".encode()), f"mount tmpfs on {directory}")


def join(namespace: str | Path) -> None:
    """Move this (single-threaded) process into the mount namespace at `namespace` (/proc/PID/ns/mnt).
    The working directory becomes the namespace's root: set it again after."""
    fd = os.open(namespace, os.O_RDONLY)
    try:
        libc_check(libc.setns(fd, CLONE_NEWNS), f"setns {namespace}")
    finally:
        os.close(fd)
