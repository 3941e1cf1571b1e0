"""Host prerequisites of every engine: root, and the Debian packages of the tools it runs."""

from __future__ import annotations

import os
import shutil
import subprocess

from lab.errors import LabError, Progress


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root (network namespaces, iptables, Docker): run it with sudo")


def apt_install(packages: list[str], progress: Progress) -> None:
    if not shutil.which("apt-get"):
        raise LabError(f"cannot install {' '.join(packages)}: no apt-get here; install them by hand")
    progress(f"installing {' '.join(packages)} from the distribution's packages (once)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")


def ensure_packages(commands: dict[str, str], progress: Progress) -> None:
    """Install the Debian package for each missing command ({command: package})."""
    missing = sorted({pkg for cmd, pkg in commands.items() if not shutil.which(cmd)})
    if missing:
        apt_install(missing, progress)
