"""Every command the host runs inside a node, and how its answer is read: the one place that spells them.

The node programs answer in one schema: JSON objects on stdout, one per line, the last one the
result (a program that fails says why on stderr and exits non-zero). A command here is its argv
and the reader of its answer, so adding a node command is one function, and the scenario, the
classifier, the bench and the tests all speak to nodes through these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from lab.engines.base import ExecResult
from lab.errors import LabError
from lab.topology import TURN_PORT, Node, NodeRole, Topology
from peers.peer import CANDIDATE_MODES, RELAY_MODES  # noqa: F401 - the peer's modes, for the host to offer and check

if TYPE_CHECKING:
    from lab.engines.base import Engine

T = TypeVar("T")
PYTHON = ("python3", "-m")
# The main program of each kind of node (what compose.yaml runs and the netns engine forks).
PROGRAMS = {
    NodeRole.BROKER: "server.broker",
    NodeRole.ROUTER: "nat.router",
    NodeRole.PEER: "node.lifecycle",
    NodeRole.OUTSIDER: "node.lifecycle",
    NodeRole.RELAY: "relay.turn_server",
    NodeRole.WAN_HOST: "node.lifecycle",  # idle until `make run WAN=...` runs the user's program there
}


def program(module: str, *args: str) -> list[str]:
    """`python3 -m MODULE ARGS`: how every node program is started (the netns fork server knows the form)."""
    return [*PYTHON, module, *args]


def json_result(res: ExecResult, what: str) -> dict:
    """The last JSON line of a node program's answer: its result."""
    for line in reversed(res.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise LabError(f"{what}: no JSON result (exit {res.exit_code}):\n{(res.stderr or res.stdout)[-1000:]}")


@dataclass(frozen=True)
class NodeCommand(Generic[T]):
    """A command for a node and the reader of its answer."""

    what: str  # named in errors
    argv: list[str]
    read: Callable[[ExecResult, str], T]
    stdin: bytes | None = None  # what the command reads on its standard input: its secrets, never in argv

    def run(self, engine: Engine, node: str) -> T:
        return self.read(engine.exec(node, self.argv, self.stdin), f"{self.what} on {node}")


def _ok_result(res: ExecResult, what: str) -> dict:
    if not res.ok:
        raise LabError(f"{what}: {res.stderr.strip() or res.stdout.strip()}")
    return json_result(res, what)


def _as_is(res: ExecResult, what: str) -> ExecResult:
    return res


# -- the nodes' main programs -------------------------------------------------------------------
def node_program(topology: Topology, node: Node) -> list[str]:
    """The node's main process."""
    if node.role is NodeRole.BROKER:
        return program(PROGRAMS[node.role], "--port", str(topology.broker_port),
                       "--alt-port", str(topology.broker_alt_port))
    if node.role is NodeRole.RELAY:
        return program(PROGRAMS[node.role], "--port", str(TURN_PORT))
    return program(PROGRAMS[node.role])


def capture_agent(directory: str, vantages: Iterable[str]) -> list[str]:
    """A capture agent writing into `directory`, one --vantage each (NAME@ADDRESS or NAME=NETNS:IFACE)."""
    return program("node.capture_agent", "--dir", directory, *(arg for v in vantages for arg in ("--vantage", v)))


# -- the routers -------------------------------------------------------------------------------
def router_apply(setting: str | None = None, firewall: bool | None = None) -> NodeCommand[dict]:
    """Replace a router's NAT rules (conntrack flushed), keeping what is not given; the answer is the
    state now in force."""
    argv = program("nat.router", "apply", *(["--nat", setting] if setting else []),
                   *(["--firewall", "on" if firewall else "off"] if firewall is not None else []))
    return NodeCommand("nat.router apply", argv, _ok_result)


def router_show() -> NodeCommand[dict]:
    """The NAT setting in force on a router, its behaviour and whether its firewall is on."""
    return NodeCommand("nat.router show", program("nat.router", "show"), _ok_result)


def link_set(setting: str) -> NodeCommand[dict]:
    """Replace a router's or the broker's link condition now; the answer is the link read back."""
    return NodeCommand("node.link_control set", program("node.link_control", "set", "--link", setting), _ok_result)


def link_show() -> NodeCommand[dict]:
    """A router's or the broker's link: the setting, and the condition read back from what is installed."""
    return NodeCommand("node.link_control show", program("node.link_control", "show"), _ok_result)


def link_recorded() -> NodeCommand[dict]:
    """A node's link setting as last put in force, without reading the kernel back (cheap)."""
    return NodeCommand("node.link_control show --recorded", program("node.link_control", "show", "--recorded"),
                       _ok_result)


def flush_conntrack() -> NodeCommand[ExecResult]:
    return NodeCommand("conntrack -F", ["conntrack", "-F"], _as_is)


def conntrack_udp(orig_src: str, orig_dst: str, dport: int) -> NodeCommand[ExecResult]:
    """The router's conntrack entries of one UDP flow, as `conntrack -L` lists them."""
    return NodeCommand("conntrack -L", ["conntrack", "-L", "-p", "udp", "--orig-src", orig_src, "--orig-dst", orig_dst,
                                        "--orig-port-dst", str(dport)], _as_is)


# -- the broker ----------------------------------------------------------------------------------
def _one_each(field: str, names: list[str]) -> Callable[[ExecResult, str], dict]:
    """A reader of an answer that holds one `field` entry per name asked for (secrets per room,
    credentials per peer), and nothing else."""
    def read(res: ExecResult, what: str) -> dict:
        entries = _ok_result(res, what).get(field, {})
        if set(entries) != set(names):
            raise LabError(f"{what}: {field} for {sorted(entries)}, not for {sorted(names)}")
        return entries

    return read


def mint_secrets(rooms: list[str]) -> NodeCommand[dict[str, str]]:
    """The secrets of rooms, derived from the broker key on the broker's node (one command for all)."""
    return NodeCommand("server.broker_key room-secret",
                       program("server.broker_key", "room-secret", *(a for r in rooms for a in ("--room", r))),
                       _one_each("secrets", rooms))


def broker_status() -> NodeCommand[dict]:
    """pid, VmRSS and VmHWM (kB) of the broker and its statistics, fresh."""
    return NodeCommand("server.status", program("server.status"), _ok_result)


def process_stats() -> NodeCommand[list[dict]]:
    """The node's processes: pid, name, VmRSS (kB) and open file descriptors of each (make soak)."""
    return NodeCommand("node.process_stats", program("node.process_stats"),
                       lambda res, what: _ok_result(res, what)["processes"])


def broker_restart() -> NodeCommand[dict]:
    """Restart the broker's service (state forgotten, key re-read): the broker-restart fault. Answers
    once it is back, with its statistics' new start time."""
    return NodeCommand("server.status --restart", program("server.status", "--restart"), _ok_result)


def standalone_broker(host: str, port: int, state_dir: str, *extra: str) -> list[str]:
    """A broker of its own on `host` (the bench's), keeping its files in `state_dir`."""
    return program("server.broker", "--host", host, "--port", str(port), "--alt-port", str(port + 1),
                   "--state-dir", state_dir, *extra)


# -- the relay ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TurnCredential:
    server: str  # IP:PORT
    username: str
    password: str


def mint_turn_credentials(users: list[str], ttl_s: int) -> NodeCommand[dict[str, dict]]:
    """Time-limited TURN credentials, minted from the relay's secret on its node (one command for all)."""
    return NodeCommand("relay.credentials", program("relay.credentials", *(a for u in users for a in ("--user", u)),
                                                    "--ttl", str(ttl_s)), _one_each("credentials", users))


def relay_check() -> NodeCommand[dict]:
    """Whether the relay's turnserver answers a STUN Binding on each of its addresses."""
    return NodeCommand("relay.turn_server check", program("relay.turn_server", "check", "--port", str(TURN_PORT)),
                       _ok_result)


def relay_kill() -> NodeCommand[dict]:
    """Kill the relay's turnserver (the node stays up without it): the relay-down fault."""
    return NodeCommand("relay.turn_server kill", program("relay.turn_server", "kill"), _ok_result)


# -- the peers and the outsider ------------------------------------------------------------------
def punch(broker: str, room: str, label: str, secret: str, messages: int, punch_delay_s: float,
          timeout_s: float, relay: str = "off", turn: TurnCredential | None = None,
          candidates: str = "all") -> NodeCommand[dict]:
    """Register, punch and exchange `messages` each way; the answer is the peer's own report, with its log.
    With a TURN credential and relay auto or force, the peer gathers a relayed candidate first; `candidates`,
    the partner's endpoints it probes (CANDIDATE_MODES)."""
    argv = program("peers.peer", "punch", "--broker", broker, "--room", room, "--id", label, "--secrets-stdin",
                   "--messages", str(messages), "--punch-delay", str(punch_delay_s), "--timeout", str(timeout_s),
                   "--relay", relay, "--candidates", candidates)
    secrets = {"secret": secret}
    if turn is not None:
        argv += ["--turn", turn.server, "--turn-user", turn.username]
        secrets["turn_password"] = turn.password

    def read(res: ExecResult, what: str) -> dict:
        result = json_result(res, what)
        result["log"] = res.stderr.strip().splitlines()
        return result

    return NodeCommand("peers.peer punch", argv, read, json.dumps(secrets).encode())


def kill_peer(label: str) -> NodeCommand[dict]:
    """SIGKILL the node's punching peer `label`: the peer-killed fault. The answer says whether there was
    one to kill (ok) or why not (error): a peer that had already finished is no failure of the lab."""
    return NodeCommand("peers.peer kill", program("peers.peer", "kill", "--id", label), json_result)


def run_program(command: str, out: str, cwd: str, duration_s: float, env: dict[str, str],
                pid_file: str | None = None) -> NodeCommand[dict]:
    """A user's command line in a node, bounded by `duration_s` (peers.program_runner); the answer is how it
    ended: exit code, stopped or not, seconds, the first lines of its output. With `pid_file`,
    stop_by_pid_file(pid_file) ends it sooner, as the duration would."""
    argv = program("peers.program_runner", "--out", out, "--cwd", cwd, "--duration", f"{duration_s:g}",
                   *(("--pid-file", pid_file) if pid_file else ()), "--env-stdin", "--", command)
    # The environment on stdin: it holds the TURN password, and a command line is visible to ps.
    return NodeCommand("peers.program_runner", argv, _ok_result, json.dumps(env).encode())


PROC_SOCKETS = {"udp": ("/proc/net/udp", "07"), "tcp": ("/proc/net/tcp", "0A")}  # unconnected UDP, TCP LISTEN


def listening() -> NodeCommand[set[tuple[str, int]]]:
    """The node's listening sockets, (protocol, port): whether a server in it is up yet."""

    def read(res: ExecResult, what: str) -> set[tuple[str, int]]:
        found, proto = set(), None
        for line in res.stdout.splitlines():
            fields = line.split()
            if fields[:1] == ["==>"]:  # tail's header names the file
                proto = next((p for p, (path, _) in PROC_SOCKETS.items() if path in line), None)
            elif proto and len(fields) > 3 and ":" in fields[1] and fields[3] == PROC_SOCKETS[proto][1]:
                found.add((proto, int(fields[1].rsplit(":", 1)[1], 16)))
        return found

    return NodeCommand("listening sockets", ["tail", "-n", "+2", *(path for path, _ in PROC_SOCKETS.values())], read)


def reach(targets: list[tuple[str, str]], attempts: int, wait_s: float) -> NodeCommand[list[dict]]:
    """Tagged pings to each (IP:PORT, tag), all from one socket; the answer says, per target, what came back."""
    argv = program("peers.peer", "reach", *(a for to, tag in targets for a in ("--to", to, "--tag", tag)),
                   "--attempts", str(attempts), "--wait", str(wait_s))

    def read(res: ExecResult, what: str) -> list[dict]:
        outcomes = json_result(res, what)["targets"]
        if len(outcomes) != len(targets):
            raise LabError(f"{what} reported {len(outcomes)} of {len(targets)} targets:\n{res.stderr[-1000:]}")
        return outcomes

    return NodeCommand("peers.peer reach", argv, read)


def classify(server: str, lifetime_max: float = 0) -> NodeCommand[dict]:
    """The lab's own RFC 5780 classifier against `server`, with the mapping lifetime up to `lifetime_max` s."""
    argv = program("peers.classify", "--server", server, *(["--lifetime-max", str(lifetime_max)] if lifetime_max else []))

    def read(res: ExecResult, what: str) -> dict:
        result = json_result(res, what) if res.stdout.strip() else {"error": res.stderr}
        if "error" in result:
            raise LabError(f"{what}: {result['error']}")
        return result

    return NodeCommand("peers.classify", argv, read)


def outside_tool(argv: list[str], limit_s: int = 60) -> NodeCommand[str]:
    """An outside program (turnutils_natdiscovery, stun) under a time limit; its whole output as text."""
    return NodeCommand(argv[0], ["timeout", str(limit_s), *argv], lambda res, what: res.stdout + res.stderr)


def stun_load(target: str, seconds: float, window: int | None = None, core: str | None = None) -> NodeCommand[dict]:
    """STUN Binding requests at `target` for `seconds` (pinned to `core`); the answer counts them."""
    argv = program("peers.stun_load", "--to", target, "--seconds", str(seconds),
                   *(["--window", str(window)] if window else []))
    return NodeCommand("peers.stun_load", [*(["taskset", "-c", core] if core else []), *argv], json_result)


def flood(target: str, also_port: int, count: int, rate: int, max_seconds: float) -> NodeCommand[dict]:
    """A junk flood at `target` (and its other port); the answer says what was sent."""
    return NodeCommand("peers.flood", program("peers.flood", "--to", target, "--also-port", str(also_port),
                                              "--count", str(count), "--rate", str(rate),
                                              "--max-seconds", str(max_seconds)), json_result)


def attack(action: str, *args: str) -> NodeCommand[dict]:
    """The attacker tool (peers.attacker join|replay|spoof), for the protocol's system tests."""
    return NodeCommand(f"peers.attacker {action}", program("peers.attacker", action, *args), json_result)


def chat(broker: str, room: str, label: str) -> list[str]:
    """The seed's chat on a peer, attached to a terminal (the secret comes in its environment)."""
    return program("peers.chat", "--broker", broker, "--room", room, "--id", label)


# -- files and processes of a node (the capture agents' markers) -------------------------------
WAIT_STEP_S = 0.02


def wait_for_file(path: str, timeout_s: float, step_s: float = WAIT_STEP_S) -> NodeCommand[bool]:
    """Until the file exists, at most `timeout_s`, looking every `step_s`: whether it came. One command
    in the node, not a poll from the host per try: a Docker exec costs the daemon more than the
    node's wait does."""
    script = f'i=0; until [ -f "$0" ]; do i=$((i+1)); [ "$i" -gt "$1" ] && exit 1; sleep {step_s:g}; done'
    tries = str(max(1, int(timeout_s / step_s)))
    return NodeCommand("wait for a file", ["sh", "-c", script, path, tries], lambda res, what: res.ok)


def remove_tree(path: str) -> NodeCommand[ExecResult]:
    return NodeCommand("rm -rf", ["rm", "-rf", path], _as_is)


def stop_capture(directory: str, pid_file: str, done_file: str, stats_file: str,
                 timeout_s: float) -> NodeCommand[str | None]:
    """Interrupt the capture agent of `directory` by the pid it wrote (a pattern, pkill -f, would hit every
    agent on a host whose nodes share it), wait for its DONE and answer its STATS: one command in the
    node. None if it did not finish in time."""
    tries = str(max(1, int(timeout_s / WAIT_STEP_S)))
    script = ('cd "$0" || exit 2; pid=$(cat "$1" 2>/dev/null); case "$pid" in ""|*[!0-9]*) ;; *) kill -INT "$pid";; esac; '
              f'i=0; until [ -f "$2" ]; do i=$((i+1)); [ "$i" -gt "$4" ] && exit 1; sleep {WAIT_STEP_S}; done; '
              'cat "$3"')
    return NodeCommand("stop the capture", ["sh", "-c", script, directory, pid_file, done_file, stats_file, tries],
                       lambda res, what: res.stdout if res.ok else None)


def stop_by_pid_file(path: str) -> NodeCommand[ExecResult]:
    """SIGTERM the process whose pid is in `path`, if there is one: nothing else is touched."""
    return NodeCommand("kill", ["sh", "-c", f'test -f {path} && kill "$(cat {path})"'], _as_is)
