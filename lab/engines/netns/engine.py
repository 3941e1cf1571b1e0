"""The netns engine: the lab on the kernel's own network namespaces, no containers.

Every node is a named network namespace, <project>-<node>. Every network is a bridge inside one
more namespace, <project>-switch, so the host's own namespace gets nothing: no bridge, no veth, no
route (the lab cannot collide with Docker's bridges, and nothing leaks). Each node interface is a
veth pair made inside the node as eth0, eth1, ... (with an index the engine gives, so its address
needs no lookup), its far end sent to the switch and put on its bridge; links and addresses go by
batches of netlink requests (node/netlink_batch.py). lab-up returns once every node's program has
said it is ready and every link runs.

Node programs run inside their namespace with the host's Python (the one running natlab; PATH
starts with its directory, so `python3` is that one), PYTHONPATH the project, and the command,
environment and sysctls of lab/engines/launch.py; each node has a run dir of its own under
/run/natlab/<project>/nodes/<node> (ready file, log), since all nodes share the host's files.
Every `python3 -m` program of a node, its main program and every such exec, is forked by the lab's
fork server (lab/engines/netns/forkserver.py), a Python that has imported the node programs once: a hundred
pairs start a thousand programs, and a new interpreter each would spend most of the run
importing. Other commands are spawned from here, inside the namespace.

Every namespace is written down before it is made (/run/natlab/<project>/namespaces), so lab-down
removes exactly what this project made, whatever PAIRS says now, and a failed or interrupted
lab-up removes what it got to. Processes are found by the namespace they run in; the fork server
(in the host's namespace) by its pid and start time (/run/natlab/<project>/forkserver.pid), and
it leaves by itself once its socket is gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from lab.engines.base import CaptureAgent, ExecResult
from lab.engines.host_packages import ensure_packages, require_root
from lab.engines.launch import node_environment, node_sysctls
from lab.engines.netns import forkserver
from lab.engines.netns.forkserver import PIPE
from lab.engines.node_commands import capture_agent, node_program
from lab.errors import LabError, Progress
from lab.topology import Node, Topology
from node.netlink_batch import Batch
from node.netns import create, entered, path_of, remove, write_sysctl
from node.settings import RUN_DIR_ENV, ready_file

STATE_ROOT = Path("/run/natlab")
TOOLS = {"nft": "nftables", "iptables": "iptables", "conntrack": "conntrack", "ip": "iproute2"}
# A new namespace starts from the host's IPv4 settings (devconf inheritance): forwarding off unless
# the node's own sysctls turn it on (routers).
BASELINE_SYSCTLS = {"net.ipv4.ip_forward": 0}
SWITCH_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
    # Where br_netfilter is loaded (Docker loads it), bridged frames would cross the switch's own
    # iptables and conntrack: the switch is a plain wire.
    "net.bridge.bridge-nf-call-iptables": 0,
    "net.bridge.bridge-nf-call-ip6tables": 0,
    "net.bridge.bridge-nf-call-arptables": 0,
}
# The kernel's ARP table is one for all namespaces; past gc_thresh3 entries it refuses new ones
# ("neighbor table overflow"), and a router stops answering ARP. A big lab needs more than the
# default 1024: the engine raises the limits while its lab is up (the only host setting it touches).
NEIGH_SYSCTLS = ("net.ipv4.neigh.default.gc_thresh2", "net.ipv4.neigh.default.gc_thresh3")
NEIGH_PER_INTERFACE = 8  # entries to allow for each lab interface (WAN hosts see every router)
READY_WAIT_S = 30.0  # plus READY_WAIT_PER_NODE_S for each node: big labs start hundreds of Pythons
READY_WAIT_PER_NODE_S = 0.5
STOP_WAIT_S = 3.0
FORKSERVER_WAIT_S = 30.0  # its imports take ~0.5 s on an idle machine
IFNAMSIZ = 15
# Interface indexes the engine gives (per namespace): bridges in the switch, a node's eth0, eth1, ...
BRIDGE_INDEX_BASE = 1000
NODE_INDEX_BASE = 10
SIOCGIFHWADDR = 0x8927
SIOCGIFFLAGS = 0x8913
IFF_RUNNING = 0x40
LINKS_WAIT_S = 30.0



@contextmanager
def handling(sig: signal.Signals, handler) -> Iterator[None]:
    """Run the block with `handler` for `sig` (main thread only, where Python handles signals)."""
    previous = signal.signal(sig, handler)
    try:
        yield
    finally:
        signal.signal(sig, previous)


def interrupt(*_: object) -> None:
    """SIGTERM as Ctrl-C: `kill` of the CLI cleans up as Ctrl-C does."""
    raise KeyboardInterrupt


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done (a namespace is made whole or not at all).

    Blocked, not ignored: a signal that arrives meanwhile is delivered on leaving. Children forked
    inside (pyroute2 makes a namespace in a child) inherit the mask, so the terminal's Ctrl-C,
    which goes to the whole process group, cannot kill one half-way either."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ifname(preferred: str, fallback: str) -> str:
    return preferred if len(preferred) <= IFNAMSIZ else fallback


def namespace_inode(name: str) -> int | None:
    try:
        return os.stat(path_of(name)).st_ino
    except FileNotFoundError:
        return None


def _ifreq(sock: socket.socket, request: int, ifname: str) -> bytes:
    """An interface ioctl, in the namespace `sock` was made in (no netlink dump: a big lab has hundreds)."""
    return fcntl.ioctl(sock, request, struct.pack("256s", ifname.encode()))


def mac_address(sock: socket.socket, ifname: str) -> str:
    return _ifreq(sock, SIOCGIFHWADDR, ifname)[18:24].hex(":")


def is_running(sock: socket.socket, ifname: str) -> bool:
    """Up with its carrier seen: the kernel (linkwatch, which waits for the RTNL lock, so seconds
    when other labs' namespaces are being freed) has activated it. Before that it drops what it sends."""
    return bool(struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, ifname), 16)[0] & IFF_RUNNING)


def process_start(pid: int) -> int | None:
    """When the process started (clock ticks since boot), None if it is gone or a zombie: with the
    pid, it names one process for good."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def pids_by_namespace() -> dict[int, list[int]]:
    """Every process of the host, by the inode of its network namespace."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry.name}/ns/net")  # "net:[4026532281]"
        except OSError:
            continue
        out.setdefault(int(link[5:-1]), []).append(int(entry.name))
    return out


class NetnsEngine:
    name = "netns"

    def __init__(self, topology: Topology, project_dir: Path) -> None:
        self.topology = topology
        self.project_dir = project_dir
        self.state_dir = STATE_ROOT / topology.project
        self.manifest = self.state_dir / "namespaces"
        self.switch = f"{topology.project}-switch"
        self._index = {node.name: i for i, node in enumerate(topology.nodes)}
        self._bridge_index = {net.name: BRIDGE_INDEX_BASE + i for i, net in enumerate(topology.networks)}
        self._children: list[subprocess.Popen] = []
        self.forkserver_socket = self.state_dir / "forkserver.sock"
        self.forkserver_pid = self.state_dir / "forkserver.pid"

    # -- names and places -------------------------------------------------------------------
    def namespace(self, node: str) -> str:
        return self.topology.container_name(node)

    def node_dir(self, node: str) -> Path:
        return self.state_dir / "nodes" / node

    def bridge(self, network: str) -> str:
        return _ifname(network, f"br{[n.name for n in self.topology.networks].index(network)}")

    def port(self, node: Node, side: str) -> str:
        """The switch end of a node's veth, named after the node and the interface's side."""
        i = [iface.side for iface in node.interfaces].index(side)
        return _ifname(f"{node.name}.{side}", f"p{self._index[node.name]}.{i}")

    @staticmethod
    def iface(node: Node, side: str) -> str:
        """The node's end of a veth: eth0, eth1, ... in the topology's interface order."""
        return f"eth{[i.side for i in node.interfaces].index(side)}"

    def _namespaces(self) -> list[str]:
        """Every namespace this project made (the manifest) or would make (the topology), switch last."""
        recorded = self.manifest.read_text().split() if self.manifest.exists() else []
        wanted = [self.namespace(n.name) for n in self.topology.nodes]
        names = [n for n in dict.fromkeys(recorded + wanted) if n != self.switch]
        return names + [self.switch]

    def _ready_file(self, node: str) -> Path:
        return ready_file({RUN_DIR_ENV: str(self.node_dir(node))})

    def _environment(self, node: Node) -> dict[str, str]:
        bindir = str(Path(sys.executable).parent)
        return {
            "PATH": f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(self.project_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/root",
            **node_environment(self.topology, node, run_dir=str(self.node_dir(node.name))),
        }

    @contextmanager
    def _inside(self, node: str) -> Iterator[None]:
        path = path_of(self.namespace(node))
        if not path.exists():
            raise LabError(f"{self.namespace(node)} does not exist: run `make lab-up` first")
        with entered(path):
            yield

    # -- the one host setting -----------------------------------------------------------------
    def _neighbour_room(self, progress: Progress) -> None:
        """Raise the kernel's (global) ARP table limits if this lab needs more; remember what they were."""
        need = NEIGH_PER_INTERFACE * sum(len(n.interfaces) for n in self.topology.nodes)
        have = {key: int(Path("/proc/sys", key.replace(".", "/")).read_text()) for key in NEIGH_SYSCTLS}
        wanted = {NEIGH_SYSCTLS[0]: need * 3 // 4, NEIGH_SYSCTLS[1]: need}
        raise_to = {key: value for key, value in wanted.items() if value > have[key]}
        if not raise_to:
            return
        (self.state_dir / "host-sysctls.json").write_text(json.dumps({"was": have, "set": raise_to}))
        progress("raising the kernel's ARP table limits for a lab this big: "
                 + ", ".join(f"{k}={v}" for k, v in raise_to.items()))
        for key, value in raise_to.items():
            write_sysctl(key, value)

    def _restore_neighbour_room(self) -> None:
        """Put back what _neighbour_room raised, unless another lab is up or someone changed it since."""
        saved = self.state_dir / "host-sysctls.json"
        others = [d for d in STATE_ROOT.iterdir() if d != self.state_dir] if STATE_ROOT.exists() else []
        if not saved.exists() or others:
            return
        record = json.loads(saved.read_text())
        for key, value in record["set"].items():
            current = int(Path("/proc/sys", key.replace(".", "/")).read_text())
            if current == value:
                write_sysctl(key, record["was"][key])

    # -- building ---------------------------------------------------------------------------
    def _create_namespace(self, name: str) -> None:
        with signals_deferred():
            with self.manifest.open("a") as f:  # written down first, then made whole
                f.write(name + "\n")
            create(name)

    def _build_switch(self) -> None:
        """The bridges, each given its index (the ports are put on them by index, without lookups)."""
        batch = Batch()
        batch.link("set", ifname="lo", state="up")
        for net in self.topology.networks:
            batch.link("add", index=self._bridge_index[net.name], ifname=self.bridge(net.name), kind="bridge",
                       br_stp_state=0, state="up")
        with entered(path_of(self.switch)):
            for key, value in SWITCH_SYSCTLS.items():
                if Path("/proc/sys", key.replace(".", "/")).exists():
                    write_sysctl(key, value)
            batch.send()

    def _wire(self, node: Node, switch_fd: int) -> None:
        """Sysctls first (new interfaces take the defaults), then loopback up and each interface: a
        veth made in the node with its index (so its address needs no lookup), its other end sent to the switch."""
        batch = Batch()
        batch.link("set", ifname="lo", state="up")
        for i, iface in enumerate(node.interfaces):
            index = NODE_INDEX_BASE + i
            batch.link("add", index=index, ifname=self.iface(node, iface.side), kind="veth", state="up",
                       peer={"ifname": self.port(node, iface.side), "net_ns_fd": switch_fd})
            batch.addr("add", index=index, address=str(iface.address),
                       prefixlen=self.topology.network(iface.network).subnet.prefixlen)
        with self._inside(node.name):
            for key, value in {**BASELINE_SYSCTLS, **node_sysctls(node)}.items():
                write_sysctl(key, value)
            batch.send()

    def _wire_and_start(self, nodes: Iterable[Node]) -> dict[str, forkserver.Child]:
        """Wire every node, then start every node's program. One thread, one phase after the other:
        netlink requests from several threads, or from the wiring and the starting programs at
        once, only queue for the kernel's RTNL lock and for the GIL (a hundred pairs took twice as
        long, measured)."""
        switch_fd = os.open(path_of(self.switch), os.O_RDONLY)
        try:
            for node in nodes:
                self._wire(node, switch_fd)
        finally:
            os.close(switch_fd)
        self._await_forkserver()
        return {node.name: self._start(node) for node in nodes}

    def _plug_ports(self) -> None:
        """Put every node's switch end on its bridge and up: one batch for the whole lab."""
        batch = Batch()
        for node in self.topology.nodes:
            for iface in node.interfaces:
                batch.link("set", ifname=self.port(node, iface.side), master=self._bridge_index[iface.network],
                           state="up")
        with entered(path_of(self.switch)):
            batch.send()

    def _links_not_running(self) -> list[str]:
        down = []
        with entered(path_of(self.switch)), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            down += [f"{self.switch}:{self.port(n, i.side)}" for n in self.topology.nodes for i in n.interfaces
                     if not is_running(sock, self.port(n, i.side))]
        for node in self.topology.nodes:
            with self._inside(node.name), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                down += [f"{self.namespace(node.name)}:{self.iface(node, i.side)}" for i in node.interfaces
                         if not is_running(sock, self.iface(node, i.side))]
        return down

    def _wait_links_running(self) -> None:
        """Ready means every link carries traffic: the first packets of a run must not be lost."""
        deadline = time.monotonic() + LINKS_WAIT_S
        while down := self._links_not_running():
            if time.monotonic() > deadline:
                raise LabError(f"links not running after {LINKS_WAIT_S:.0f}s: {', '.join(down[:10])}")
            time.sleep(0.01)

    def _start_forkserver(self) -> None:
        """Fork the fork server from this process, which has imported pyroute2 by now (the namespaces
        are made with it): the server imports only the rest while the nodes are wired. A process
        with other threads cannot fork safely: there the server is a new interpreter."""
        log = self.state_dir / "forkserver.log"
        if threading.active_count() == 1:
            pid = forkserver.fork_server(str(self.forkserver_socket), str(log))
        else:
            with log.open("ab") as out:
                pid = subprocess.Popen(
                    [sys.executable, "-u", "-m", "lab.engines.netns.forkserver", "--socket", str(self.forkserver_socket)],
                    cwd=self.project_dir, env={**os.environ, "PYTHONPATH": str(self.project_dir)},
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                ).pid
        self.forkserver_pid.write_text(f"{pid} {process_start(pid)}\n")

    def _await_forkserver(self) -> None:
        deadline = time.monotonic() + FORKSERVER_WAIT_S
        while not self._forkserver_answers():
            if self._forkserver_pid() is None or time.monotonic() > deadline:
                log = (self.state_dir / "forkserver.log").read_text(errors="replace")[-3000:]
                raise LabError(f"the fork server did not start:\n{log}")
            time.sleep(0.005)

    def _forkserver_answers(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.forkserver_socket))
                return True
            except OSError:
                return False

    def _forkserver_pid(self) -> int | None:
        """The pid in the pid file, if that process (same pid, same start time) still runs."""
        try:
            pid, started = map(int, self.forkserver_pid.read_text().split())
        except (OSError, ValueError):
            return None
        return pid if process_start(pid) == started else None

    def _stop_forkserver(self) -> None:
        """Kill the fork server and wait until it is gone. It holds nothing (what it started runs on
        by itself, its socket goes with the state dir): SIGKILL spares its interpreter's teardown."""
        pid = self._forkserver_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:  # this process forked it: reap it
                    return
            except ChildProcessError:  # another process's: gone once it is no longer running
                if self._forkserver_pid() is None:
                    return
            time.sleep(0.002)

    def _start(self, node: Node) -> forkserver.Child:
        run_dir = self.node_dir(node.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        return self._popen(node.name, node_program(self.topology, node), log=run_dir / "main.log")

    def _popen(self, node: str, argv: list[str], log: Path | None = None) -> forkserver.Child | subprocess.Popen:
        """Start argv inside the node, in a session of its own (the terminal's Ctrl-C is for the CLI).

        `python3 -m MODULE` is forked by the fork server (no interpreter start); any other program is
        spawned from here (vfork: ~1 ms, where a fork of the fork server's big image costs ~10)."""
        path = path_of(self.namespace(node))
        if not path.exists():
            raise LabError(f"{self.namespace(node)} does not exist: run `make lab-up` first")
        env = self._environment(self.topology.node(node))
        with open(os.devnull, "rb") as null, (log.open("ab") if log else nullcontext()) as out:
            stdio = (null.fileno(), out.fileno(), out.fileno()) if out else (null.fileno(), PIPE, PIPE)
            if forkserver.python_module(argv) is None:
                with entered(path):
                    return subprocess.Popen(argv, env=env, cwd=self.project_dir, stdin=stdio[0], stdout=stdio[1],
                                            stderr=stdio[2], start_new_session=True)
            request = forkserver.Request(argv=argv, env=env, cwd=str(self.project_dir), netns=str(path))
            return self._ask(request, *stdio)

    def _ask(self, request: forkserver.Request, *stdio: int) -> forkserver.Child:
        try:
            return forkserver.start(str(self.forkserver_socket), request, *stdio)
        except OSError as exc:
            raise LabError(f"the {self.topology.project} lab's fork server does not answer ({exc}): "
                           "run `make lab-down` and `make lab-up`") from None

    def _wait_ready(self, started: dict[str, forkserver.Child], progress: Progress) -> None:
        timeout = READY_WAIT_S + READY_WAIT_PER_NODE_S * len(started)
        deadline = time.monotonic() + timeout
        waiting = dict(started)
        said = time.monotonic()
        while waiting:
            for name, proc in list(waiting.items()):
                if self._ready_file(name).exists():
                    del waiting[name]
                elif proc.poll() is not None:
                    log = (self.node_dir(name) / "main.log").read_text(errors="replace")[-3000:]
                    raise LabError(f"{self.namespace(name)} failed to start (exit {proc.returncode}):\n{log}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise LabError(f"nodes not ready after {timeout:.0f}s: {', '.join(sorted(waiting)[:10])}")
            if time.monotonic() - said > 3:
                progress(f"{len(started) - len(waiting)}/{len(started)} nodes ready")
                said = time.monotonic()
            time.sleep(0.01)

    # -- Engine protocol ----------------------------------------------------------------------
    def up(self, progress: Progress) -> None:
        require_root("lab-up")
        ensure_packages(TOOLS, progress)
        if self.is_up():
            progress(f"the {self.topology.project} lab is already up")
            return
        if any(path_of(name).exists() for name in self._namespaces()):
            progress("a lab of this project is partly up or of another size: removing it first")
            self.down(progress)
        nodes = self.topology.nodes
        progress(f"creating {len(nodes) + 1} network namespaces ({self.topology.project}-*), "
                 f"{len(self.topology.networks)} bridges in {self.switch}")
        try:
            with handling(signal.SIGTERM, interrupt):
                self.state_dir.mkdir(parents=True, exist_ok=True)
                self._neighbour_room(progress)
                self._create_namespace(self.switch)
                self._start_forkserver()  # after the first namespace: pyroute2 is imported
                for node in nodes:
                    self._create_namespace(self.namespace(node.name))
                self._build_switch()
                started = self._wire_and_start(nodes)
                self._plug_ports()
                progress(f"{len(nodes)} nodes wired, their programs started; waiting until each is ready")
                self._wait_ready(started, progress)
                self._wait_links_running()
        except BaseException:
            with handling(signal.SIGINT, signal.SIG_IGN):  # a second Ctrl-C must not cut the cleanup short
                progress("lab-up failed: removing what it created")
                self.down(lambda _msg: None)
            raise

    def down(self, progress: Progress) -> None:
        names = [n for n in self._namespaces() if path_of(n).exists()]
        inodes = {namespace_inode(n) for n in names}
        self._stop_forkserver()  # first: it starts nothing more
        stopped = self._stop_processes(inodes)
        for name in names:
            try:
                remove(name)
            except OSError as exc:
                progress(f"could not remove namespace {name}: {exc}")
        self._restore_neighbour_room()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if STATE_ROOT.exists() and not any(STATE_ROOT.iterdir()):
            STATE_ROOT.rmdir()
        if names:
            progress(f"removed {len(names)} namespaces (with their links) and stopped {stopped} processes")

    @staticmethod
    def _stop_processes(inodes: set[int | None]) -> int:
        """SIGTERM every process in the lab's namespaces, SIGKILL what is left after STOP_WAIT_S."""
        def lab_pids() -> list[int]:
            return [pid for ino, pids in pids_by_namespace().items() if ino in inodes for pid in pids]

        pids = lab_pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + STOP_WAIT_S
            while lab_pids() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not lab_pids():
                break
            pids = lab_pids()
        return len(pids)

    def is_up(self) -> bool:
        """Every node's namespace exists, has said it is ready and still has a process running in it."""
        alive = pids_by_namespace()
        for node in self.topology.nodes:
            inode = namespace_inode(self.namespace(node.name))
            if inode is None or not alive.get(inode):
                return False
            if not self._ready_file(node.name).exists():
                return False
        return namespace_inode(self.switch) is not None and self._forkserver_answers()

    def exec(self, node: str, argv: list[str]) -> ExecResult:
        try:
            proc = self._popen(node, argv)
        except FileNotFoundError as exc:
            return ExecResult(127, "", str(exc))
        out, err = proc.communicate()
        return ExecResult(proc.wait(), out.decode(errors="replace"), err.decode(errors="replace"))

    def spawn(self, node: str, argv: list[str]) -> None:
        proc = self._popen(node, argv, log=self.node_dir(node) / "spawned.log")
        if isinstance(proc, forkserver.Child):
            proc.detach()  # the fork server reaps it
        else:
            self._children = [c for c in self._children if c.poll() is None] + [proc]  # reaped here

    def copy_out(self, node: str, path: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        for item in Path(path).iterdir():
            if item.is_file():
                shutil.copy2(item, dest / item.name)

    def set_forwarding(self, node: str, enabled: bool) -> None:
        with self._inside(node):
            write_sysctl("net.ipv4.ip_forward", int(enabled))

    def link_addresses(self, node: str) -> dict[str, str]:
        """Each interface's address (as the engine gave it, like Docker's report: no aliases) and the
        MAC the kernel has for it, by ioctl: a netlink dump per node costs a big lab seconds."""
        spec = self.topology.node(node)
        with self._inside(node), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            return {str(i.address): mac_address(sock, self.iface(spec, i.side)) for i in spec.interfaces}

    def capture_agents(self) -> list[CaptureAgent]:
        """One agent for the whole lab, run in the broker's namespace, each socket opened in its vantage's."""
        vantages = [
            f"{name}={path_of(self.namespace(node.name))}:{self.iface(node, iface.side)}"
            for name, (node, iface) in self.topology.vantages.items()
        ]
        directory = str(self.state_dir / "capture")
        return [CaptureAgent(self.topology.broker.name, capture_agent(directory, vantages), directory)]
