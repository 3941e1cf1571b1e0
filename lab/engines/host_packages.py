"""Host prerequisites of every engine: root, and the Debian packages of the tools it runs."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

from lab.errors import LabError, Progress


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root (network namespaces, iptables, Docker): run it with sudo")


POLICY_RC_D = Path("/usr/sbin/policy-rc.d")  # Debian's hook: exit 101 tells a package not to start its service
INSTALL_LOCK = Path("/run/lock/natlab-apt.lock")  # one lab's install at a time (two labs coming up at once)
APT_LOCK_WAIT_S = 600  # how long apt waits for another apt (not ours) to let go of its locks


def apt_install(packages: list[str], progress: Progress) -> None:
    """Install Debian packages without starting their services (coturn's would hold port 3478 on the host)."""
    if not shutil.which("apt-get"):
        raise LabError(f"cannot install {' '.join(packages)}: no apt-get here; install them by hand")
    progress(f"installing {' '.join(packages)} from the distribution's packages (once)")
    INSTALL_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another lab's install first: its policy-rc.d and apt's locks are its own
        _apt_install(packages)


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}"]
    ours = not POLICY_RC_D.exists()
    if ours:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        for argv in (["apt-get", *wait, "update", "-q"], ["apt-get", *wait, "install", "-y", "-q", *packages]):
            proc = subprocess.run(argv, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise LabError(f"{' '.join(argv)} failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    finally:
        if ours:
            POLICY_RC_D.unlink(missing_ok=True)
    if Path("/run/systemd/system").is_dir():  # nor at the next boot
        units = [Path(f).name for f in subprocess.run(["dpkg", "-L", *packages], capture_output=True,
                                                       text=True).stdout.split() if f.endswith(".service")]
        if units:
            subprocess.run(["systemctl", "disable", "--now", *units], capture_output=True)


def ensure_packages(commands: dict[str, str], progress: Progress) -> None:
    """Install the Debian package for each missing command ({command: package})."""
    missing = sorted({pkg for cmd, pkg in commands.items() if not shutil.which(cmd)})
    if missing:
        apt_install(missing, progress)

