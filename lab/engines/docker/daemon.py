"""The Docker daemon and a Compose command, made reachable on the host.

On a fresh Debian/Ubuntu machine it installs the distribution's docker.io and docker-compose
and starts the daemon; where Docker is already there it installs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from lab.engines.host_packages import apt_install, require_root
from lab.errors import LabError, Progress

DOCKERD_LOG = Path("/var/log/natlab-dockerd.log")
DAEMON_WAIT_S = 60


def _ping_daemon() -> bool:
    import docker

    try:
        docker.from_env(timeout=5).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def _start_daemon(progress: Progress) -> None:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        progress("starting the Docker daemon (systemctl start docker)")
        subprocess.run(["systemctl", "start", "docker"], check=False)
        return
    # No init system to ask (containers, CI sandboxes): run dockerd ourselves, detached.
    progress(f"starting dockerd (log: {DOCKERD_LOG})")
    log = DOCKERD_LOG.open("ab")
    subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)


def ensure_docker(progress: Progress) -> None:
    """Make the Docker daemon reachable: install and start it if need be."""
    if _ping_daemon():
        return
    require_root("installing or starting Docker")
    if not shutil.which("dockerd"):
        apt_install(["docker.io", "docker-compose"], progress)
    if not _ping_daemon():
        _start_daemon(progress)
        deadline = time.monotonic() + DAEMON_WAIT_S
        while not _ping_daemon():
            if time.monotonic() > deadline:
                tail = DOCKERD_LOG.read_text(errors="replace")[-2000:] if DOCKERD_LOG.exists() else ""
                raise LabError(f"the Docker daemon is still unreachable after {DAEMON_WAIT_S}s\n{tail}")
            time.sleep(0.5)
    progress("Docker daemon is up")


def compose_command(progress: Progress | None = None) -> list[str]:
    """`docker compose` (v2) where the plugin exists, else `docker-compose` (v1.29).

    NATLAB_COMPOSE overrides the choice (the Makefile sets it).
    """
    chosen = os.environ.get("NATLAB_COMPOSE", "").split()
    if chosen:
        return chosen
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if progress is None:
        raise LabError("neither `docker compose` nor `docker-compose` is installed")
    apt_install(["docker-compose"], progress)
    return ["docker-compose"]
