"""`make run`: the user's own programs as the peers, under capture, each pair in the lab at once.

Order of a run (captured at every vantage point, as the punch test):
1. NAT tables start empty; the pairs' mailboxes are emptied; captures start.
2. With WAN=..., the WAN program starts on the WAN host first (a rendezvous, relay or server of
   the user's), and A and B wait until it listens on a port of its own (at most WAN_READY_S).
3. The A command runs in every pair's a peer and the B command in every b peer, all at once, each
   through peers.program_runner: bounded by the duration, its output in its own directory.
   What each program gets is in its environment (program_environment: the README's table).
   When every peer's program has ended, the WAN program is stopped (TERM, then KILL).
4. Captures stop; each program's log and output directory, and each pair's mailbox, are copied
   beside the pcaps; run.json records the commands, how each program ended and the topology.
The scenario only acts and records; which path the programs' traffic took is decided from the
pcaps (lab.analysis.program_paths).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.errors import LabError, Progress
from lab.experiment.captures import Captures
from lab.experiment.live import live_topology, require_up
from lab.experiment.nat_control import flush_nat_state
from lab.experiment.punch_test import each, new_run_dir, point_latest, whole_or_nothing
from lab.experiment.relay_credentials import turn_credentials
from lab.paths import mailbox_dir
from lab.run_format import EXPECTATIONS, RUN_FORMAT, RUN_RECORD
from lab.topology import NodeRole, Pair, Topology

MAX_DURATION_S = 3600
WAN_LABEL = "wan"  # the WAN program's label: its log is wan.log, its output out-wan/
WAN_READY_S = 5.0  # how long A and B wait for the WAN program to listen


@dataclass(frozen=True)
class ProgramRunConfig:
    a: str  # the command line of every pair's a side
    b: str
    wan: str = ""  # the command line of the WAN program, on the WAN host (none: "")
    duration_s: float = 30.0
    expect: str = "any"
    relay: str = "auto"  # whether the programs get TURN credentials (off: none)

    def __post_init__(self) -> None:
        if not self.a.strip() or not self.b.strip():
            raise LabError("give both programs: A='command line' B='command line'")
        if not 1 <= self.duration_s <= MAX_DURATION_S:
            raise LabError(f"DURATION must be 1 to {MAX_DURATION_S} seconds, not {self.duration_s:g}")
        if self.expect not in EXPECTATIONS:
            raise LabError(f"EXPECT must be one of {', '.join(EXPECTATIONS)}, not {self.expect!r}")


def out_name(label: str) -> str:
    """A program's output directory under the lab's shared directory, by its label (a, b2, wan)."""
    return f"out-{label}"


def empty(directory: Path) -> None:
    """Empty a directory, keeping it: a container bind-mounts the directory itself, not a path to it."""
    directory.mkdir(parents=True, exist_ok=True)
    for item in directory.iterdir():
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def _lab_environment(topology: Topology, label: str, shared: str, files: str, duration_s: float) -> dict[str, str]:
    """What every program learns of the lab, the WAN program's included."""
    return {"NATLAB_LABEL": label, "NATLAB_STUN": f"{topology.broker.address}:{topology.broker_port}",
            "NATLAB_OUT": f"{shared}/{out_name(label)}", "NATLAB_FILES": files, "NATLAB_DURATION": f"{duration_s:g}"}


def program_environment(topology: Topology, pair: Pair, shared: str, files: str, duration_s: float,
                        turn: node_commands.TurnCredential | None, wan: bool = False) -> dict[str, str]:
    """What a peer's program learns of the lab, one variable each (the README's table)."""
    partner = topology.partner(pair)
    env = {
        "NATLAB_SIDE": pair.side, "NATLAB_PAIR": str(pair.number), "NATLAB_PARTNER": partner.label,
        "NATLAB_PRIVATE_IP": str(pair.private_ip), "NATLAB_MAILBOX": f"{shared}/pair-{pair.number}",
        **_lab_environment(topology, pair.label, shared, files, duration_s),
    }
    if turn is not None:
        env.update(NATLAB_TURN=turn.server, NATLAB_TURN_USERNAME=turn.username, NATLAB_TURN_PASSWORD=turn.password)
    if wan:
        env["NATLAB_WAN"] = str(topology.address_facing(topology.wan_host, pair))
    return env


def wan_environment(topology: Topology, shared: str, files: str, duration_s: float) -> dict[str, str]:
    """What the WAN program learns: its public addresses (one per segment) and the number of pairs."""
    host = topology.wan_host
    return {"NATLAB_SIDE": WAN_LABEL, "NATLAB_PAIRS": str(len(topology.punch_pairs)),
            "NATLAB_WAN_IPS": ",".join(str(i.address) for i in host.interfaces),
            **_lab_environment(topology, WAN_LABEL, shared, files, duration_s)}


def wait_listening(engine: Engine, node: str, before: set[tuple[str, int]], running: Future,
                   progress: Progress) -> None:
    """Until the WAN program listens on a port the node did not listen on `before` it started (a
    container has Docker's DNS listening already), has ended, or WAN_READY_S have passed."""
    started = time.monotonic()
    while time.monotonic() - started < WAN_READY_S and not running.done():
        sockets = node_commands.listening().run(engine, node) - before
        if sockets:
            ports = ", ".join(f"{proto}/{port}" for proto, port in sorted(sockets))
            progress(f"the WAN program listens on {ports} (after {time.monotonic() - started:.1f}s)")
            return
        time.sleep(0.1)
    progress("the WAN program has ended already" if running.done()
             else f"the WAN program opened no listening socket in {WAN_READY_S:g}s: starting A and B anyway")


def run_programs(engine: Engine, config: ProgramRunConfig, captures_root: Path, progress: Progress) -> Path:
    """Run the programs under capture; return the run directory (pcaps, logs, mailboxes, run.json)."""
    require_up(engine)
    topology = engine.topology
    host_shared = mailbox_dir(topology.project)
    empty(host_shared)
    for pp in topology.punch_pairs:
        (host_shared / f"pair-{pp.number}").mkdir(parents=True)
    shared, files = engine.program_paths()
    turn = turn_credentials(engine, config.relay, config.duration_s)
    run_dir = new_run_dir(captures_root)
    progress(f"run {run_dir.name}: flushing NAT state, starting captures")
    each(lambda r: flush_nat_state(engine, r.name), topology.by_role(NodeRole.ROUTER))  # carriers' too
    captures = Captures(engine)
    captures.start()
    record: dict = {"format": RUN_FORMAT, "kind": "programs", "run_id": run_dir.name, "started": time.time(),
                    "config": asdict(config)}
    labels = [p.label for p in topology.pairs] + ([WAN_LABEL] if config.wan else [])
    try:
        def one(pair: Pair) -> dict:
            command = config.a if pair.side == "a" else config.b
            env = program_environment(topology, pair, shared, files, config.duration_s, turn.get(pair.label),
                                      bool(config.wan))
            return node_commands.run_program(command, env["NATLAB_OUT"], files, config.duration_s, env).run(
                engine, pair.peer.name)

        with ThreadPoolExecutor(len(labels)) as pool:
            wan_run = None
            if config.wan:
                wan_node, env = topology.wan_host.name, wan_environment(topology, shared, files, config.duration_s)
                progress(f"starting the WAN program on {wan_node} ({env['NATLAB_WAN_IPS']})")
                stopper = f"{env['NATLAB_OUT']}.pid"
                before = node_commands.listening().run(engine, wan_node)
                wan_run = pool.submit(node_commands.run_program(config.wan, env["NATLAB_OUT"], files,
                                                                config.duration_s, env, stopper).run,
                                      engine, wan_node)
                wait_listening(engine, wan_node, before, wan_run, progress)
            progress(f"running A and B in {len(topology.punch_pairs)} pair(s) for at most {config.duration_s:g}s")
            try:
                record["programs"] = dict(zip((p.label for p in topology.pairs), pool.map(one, topology.pairs)))
            finally:
                if wan_run is not None and not wan_run.done():
                    progress("the peers' programs have ended: stopping the WAN program")
                    node_commands.stop_by_pid_file(stopper).run(engine, wan_node)
            if wan_run is not None:
                record["programs"][WAN_LABEL] = wan_run.result()
    finally:
        progress("stopping captures, collecting pcaps, logs and mailboxes")
        time.sleep(0.3)
        with whole_or_nothing(run_dir):
            captures.stop_and_collect(run_dir)
            record["finished"] = time.time()
            record["topology"] = live_topology(engine).to_json()
            for label in labels:
                out = host_shared / out_name(label)
                if (out / "program.log").exists():
                    shutil.move(out / "program.log", run_dir / f"{label}.log")
                if out.exists() and any(out.iterdir()):
                    shutil.copytree(out, run_dir / out_name(label))
            for pp in topology.punch_pairs:
                box = host_shared / f"pair-{pp.number}"
                if box.exists() and any(box.iterdir()):
                    shutil.copytree(box, run_dir / f"mailbox-{pp.number}")
            (run_dir / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
            point_latest(captures_root, run_dir)
    return run_dir
