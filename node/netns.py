"""Entering a network namespace from Python, one thread at a time, and leaving it again.

setns(2) moves only the calling thread. Sockets, netlink handles, /proc/sys/net files and child
processes made while inside belong to that namespace for good, so a thread enters, makes what it
needs and leaves; the other threads of the process never notice.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
NETNS_DIR = Path("/run/netns")  # where `ip netns` and pyroute2 keep named namespaces

libc = ctypes.CDLL(None, use_errno=True)


def libc_check(result: int, what: str) -> None:
    """Raise OSError, named `what`, if a libc call (setns, unshare, mount, umount2) returned an error."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def path_of(name: str) -> Path:
    return NETNS_DIR / name


def _setns(fd: int) -> None:
    libc_check(libc.setns(fd, CLONE_NEWNET), "setns")


@contextmanager
def entered(path: str | Path) -> Iterator[None]:
    """Run the block with the calling thread inside the network namespace at `path`."""
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def enter_for_good(path: str | Path) -> None:
    """Move the calling thread into the namespace at `path` for good (a forked child, before it runs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def create(name: str) -> None:
    """Make the named namespace (as `ip netns add`) from this thread, without pyroute2's helper process.

    pyroute2's netns.create forks a child to unshare in (~10 ms; hundreds for a big lab); here the
    calling thread unshares, pyroute2's netns.attach binds the thread's new namespace to its name,
    and the thread returns home."""
    from pyroute2 import netns

    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        libc_check(libc.unshare(CLONE_NEWNET), "unshare")
        try:
            netns.attach(name, threading.get_native_id())  # binds /proc/<tid>/ns/net to /run/netns/<name>
        finally:
            _setns(home)
    finally:
        os.close(home)


def remove(name: str) -> None:
    """Unname a namespace (as `ip netns delete`, and pyroute2's netns.remove, do: detach the bind mount,
    delete the file); the kernel frees it once no process or interface holds it. Done here because
    lab-down needs nothing else of pyroute2, whose import is most of lab-down's time."""
    path = path_of(name)
    libc_check(libc.umount2(str(path).encode(), MNT_DETACH), f"umount {path}")
    path.unlink()


def write_sysctl(key: str, value: int | str) -> None:
    """Set a sysctl of the calling thread's network namespace (net.* keys are per namespace)."""
    Path("/proc/sys", key.replace(".", "/")).write_text(f"{value}\n")
