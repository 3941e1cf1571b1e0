"""The Docker engine: Compose stands the lab up and down, the docker SDK drives the containers."""

from __future__ import annotations

import io
import ipaddress
import os
import shutil
import socket
import subprocess
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.engines import node_commands
from lab.engines.base import CaptureAgent, ExecResult
from lab.engines.docker import compose_file, daemon, images
from lab.engines.docker.compose_file import compose_variables
from lab.engines.host_packages import require_root
from lab.engines.node_commands import capture_agent
from lab.engines.rollback import undone_on_failure
from lab.errors import LabError, Progress
from lab.paths import RUNTIME_DIR, USER_IMAGE_ENV, lab_runtime
from lab.topology import Node, Topology, build_topology, wiring
from node.settings import READY_FILE

NETWORK_RELEASE_S = 5.0  # how long a network may still count a removed container's endpoint
HEALTH_WAIT_S = 90
READY_STEP_S = 0.1  # how often a node's waiting command looks for its READY file
READY_PARALLEL = 32  # nodes waited for at once (each a docker exec running a shell loop)
CAPTURE_DIR = "/tmp/natlab-capture"  # a capture agent's directory in its container


class DockerEngine:
    name = "docker"

    def __init__(self, topology: Topology, project_dir: Path) -> None:
        self.topology = topology
        self.project_dir = project_dir
        self.compose_path = project_dir / "compose.yaml"
        # NAT and link settings reach compose through the environment (see _compose): the file depends on
        # name, size and shape only.
        self.compose_text = compose_file.render(wiring(topology))
        self.is_committed_lab = self.compose_text == compose_file.render(build_topology())
        if not self.is_committed_lab:  # any other name or size: generated at lab-up, not committed
            self.compose_path = project_dir / RUNTIME_DIR / f"compose-{topology.project}.yaml"
        self._client = None

    # -- plumbing -------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env(timeout=120)
                self._client.ping()
            except Exception as exc:  # noqa: BLE001
                raise LabError(f"the Docker daemon is not reachable ({exc}); `make lab-up` installs and starts it") from None
        return self._client

    def _container(self, node: str):
        import docker

        try:
            return self.client.containers.get(self.topology.container_name(node))
        except docker.errors.NotFound:
            raise LabError(f"{self.topology.container_name(node)} is not running: run `make lab-up` first") from None

    def _compose(self, *args: str, progress: Progress | None = None) -> None:
        # --project-directory: a compose file under .run/ still mounts the code from the project dir.
        argv = [*daemon.compose_command(progress), "-p", self.topology.project, "--project-directory",
                str(self.project_dir), "-f", str(self.compose_path), *args]
        env = {**os.environ, **compose_variables(self.topology)}
        if env.get(USER_IMAGE_ENV):
            env[USER_IMAGE_ENV] = images.user_image_tag(env[USER_IMAGE_ENV])
        proc = subprocess.run(argv, cwd=self.project_dir, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")

    def _lab_containers(self) -> list:
        label = f"com.docker.compose.project={self.topology.project}"
        return self.client.containers.list(all=True, filters={"label": label})

    # -- checks before anything is created ------------------------------------------------
    def check_compose_file(self) -> None:
        """The committed compose.yaml must be current; any other lab's compose file is written here."""
        if not self.is_committed_lab:
            self.compose_path.parent.mkdir(exist_ok=True)
            self.compose_path.write_text(self.compose_text)
        elif not self.compose_path.exists() or self.compose_path.read_text() != self.compose_text:
            raise LabError(f"{self.compose_path.name} is not what lab/topology.py describes: run `make compose`")

    def check_address_pools(self) -> None:
        """Refuse to start if another Docker network already uses one of the lab's subnets."""
        ours = {str(n.subnet): n.name for n in self.topology.networks}
        for net in self.client.networks.list():
            if net.attrs.get("Labels", {}).get("com.docker.compose.project") == self.topology.project:
                continue
            for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                subnet = cfg.get("Subnet")
                if not subnet or ":" in subnet:
                    continue
                theirs = ipaddress.ip_network(subnet, strict=False)
                for mine, name in ours.items():
                    if theirs.overlaps(ipaddress.ip_network(mine)):
                        raise LabError(
                            f"Docker network {net.name!r} uses {subnet}, which overlaps the lab's {name} network "
                            f"{mine}: remove it (docker network rm {net.name}) or move it elsewhere"
                        )

    # -- Engine protocol -------------------------------------------------------------------
    def up(self, progress: Progress) -> None:
        require_root("lab-up")
        daemon.ensure_docker(progress)
        self.check_compose_file()
        self.check_address_pools()
        images.ensure_node_image(self.client, self.project_dir, progress)
        if os.environ.get(USER_IMAGE_ENV):
            images.ensure_user_image(self.client, os.environ[USER_IMAGE_ENV], progress)
        progress("starting containers (compose up)")
        with undone_on_failure(lambda: self.down(lambda _msg: None), progress):
            self._compose("up", "-d", "--remove-orphans", progress=progress)
            self._wait_ready(progress)

    def _wait_ready(self, progress: Progress) -> None:
        """Until every node has written its READY file: one waiting command per node, all at once."""
        import docker

        def not_ready(node: Node) -> tuple[str, str] | None:
            """None once the node is ready, else (its name, why not)."""
            try:
                if node_commands.wait_for_file(str(READY_FILE), HEALTH_WAIT_S, READY_STEP_S).run(self, node.name):
                    return None
            except docker.errors.APIError as exc:  # the container is not running
                return node.name, str(exc.explanation or exc)
            return node.name, f"no {READY_FILE} after {HEALTH_WAIT_S}s"

        with ThreadPoolExecutor(READY_PARALLEL) as pool:
            waiting = [w for w in pool.map(not_ready, self.topology.nodes) if w is not None]
        if waiting:
            first = self.topology.container_name(waiting[0][0])
            try:
                logs = self.client.containers.get(first).logs(tail=30).decode(errors="replace")
            except docker.errors.APIError:
                logs = ""
            raise LabError("nodes not ready: " + ", ".join(f"{name} ({why})" for name, why in waiting)
                           + (f"\n{first}'s last words:\n{logs}" if logs else ""))

    def down(self, progress: Progress) -> None:
        try:
            containers = self._lab_containers()
        except LabError:
            progress("Docker daemon not reachable: nothing to take down")
            return
        if self.compose_path.exists():
            try:
                self._compose("down", "--remove-orphans", "--timeout", "2")
            except LabError as exc:  # e.g. a network whose endpoints Docker has not let go of yet
                progress(f"compose down did not finish ({str(exc).strip().splitlines()[-1][:160]}): "
                         "removing the rest by label")
        # Whatever compose did not know about (an older compose.yaml) or did not finish: remove by label.
        for c in self._lab_containers():
            c.remove(force=True)
        label = f"com.docker.compose.project={self.topology.project}"
        stuck = [why for net in self.client.networks.list(filters={"label": label})
                 if (why := self._remove_network(net)) is not None]
        shutil.rmtree(self.project_dir / lab_runtime(self.topology.project), ignore_errors=True)  # its mailboxes
        if stuck:
            raise LabError(f"{len(stuck)} Docker network(s) of the lab are left: {'; '.join(stuck[:3])}. Docker still "
                           "counts endpoints of containers it has removed (a dockerd fault under load); restart the "
                           "daemon (systemctl restart docker; here: pkill -x dockerd, and make lab-up starts it), "
                           "then make lab-down again")
        if containers:
            progress(f"removed {len(containers)} containers and the lab's networks")

    @staticmethod
    def _remove_network(net) -> str | None:
        """Remove a network: while Docker still counts an endpoint on it (a removed container's, for a
        moment, or for good when the daemon lost track under load), disconnect it by force and try
        again, for NETWORK_RELEASE_S. None when done, else what is left."""
        import docker

        deadline = time.monotonic() + NETWORK_RELEASE_S
        while True:
            try:
                net.remove()
                return None
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                if time.monotonic() > deadline:
                    return f"{net.name} ({exc.explanation or exc})"
                try:
                    net.reload()
                    for endpoint in (net.attrs.get("Containers") or {}):
                        net.disconnect(endpoint, force=True)
                except docker.errors.APIError:
                    pass  # a stale endpoint may refuse even this: the retry says so
                time.sleep(0.5)

    def program_paths(self) -> tuple[str, str]:
        return compose_file.MAILBOX_IN_NODE, compose_file.FILES_IN_NODE

    def host_pids(self) -> list[int]:
        """None: every process of the lab is in a container (the daemon is the machine's, not the lab's)."""
        return []

    def is_up(self) -> bool:
        try:
            running = {c.name for c in self._lab_containers() if c.status == "running"}
        except LabError:
            return False
        return all(self.topology.container_name(n.name) in running for n in self.topology.nodes)

    def exec(self, node: str, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        container = self._container(node)
        if stdin is None:
            code, (out, err) = container.exec_run(argv, demux=True)
            return ExecResult(code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))
        return self._exec_with_stdin(container, argv, stdin)

    def _exec_with_stdin(self, container, argv: list[str], data: bytes) -> ExecResult:
        """docker exec with `data` as the command's whole stdin (written, then half-closed: EOF), its
        stdout and stderr read apart from the attached stream; exec_run cannot write stdin."""
        from docker.utils.socket import STDOUT, frames_iter

        api = self.client.api
        exec_id = api.exec_create(container.id, argv, stdin=True, stdout=True, stderr=True)["Id"]
        stream = api.exec_start(exec_id, socket=True)
        raw = getattr(stream, "_sock", stream)
        try:
            raw.sendall(data)
            raw.shutdown(socket.SHUT_WR)
            out, err = bytearray(), bytearray()
            for kind, chunk in frames_iter(stream, tty=False):
                (out if kind == STDOUT else err).extend(chunk)
        finally:
            stream.close()
        code = api.exec_inspect(exec_id)["ExitCode"]
        return ExecResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def spawn(self, node: str, argv: list[str]) -> None:
        self._container(node).exec_run(argv, detach=True)

    def copy_out(self, node: str, path: str, dest: Path) -> None:
        stream, _ = self._container(node).get_archive(path)
        data = io.BytesIO(b"".join(stream))
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=data) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    member.name = Path(member.name).name
                    tar.extract(member, dest)

    def set_forwarding(self, node: str, enabled: bool) -> None:
        pid = self._container(node).attrs["State"]["Pid"]
        value = "1" if enabled else "0"
        proc = subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "sysctl", "-qw", f"net.ipv4.ip_forward={value}"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise LabError(f"could not set ip_forward={value} on {node}: {proc.stderr.strip()}")

    def link_addresses(self, node: str) -> dict[str, str]:
        networks = self._container(node).attrs["NetworkSettings"]["Networks"]
        return {n["IPAddress"]: n["MacAddress"] for n in networks.values() if n.get("IPAddress")}

    def capture_agents(self) -> list[CaptureAgent]:
        """One agent in each captured container, capturing that container's own interfaces."""
        vantages: dict[str, list[str]] = {}
        for name, (node, iface) in self.topology.vantages.items():
            vantages.setdefault(node.name, []).append(f"{name}@{iface.address}")
        return [CaptureAgent(node, capture_agent(CAPTURE_DIR, names), CAPTURE_DIR) for node, names in vantages.items()]
