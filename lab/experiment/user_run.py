"""`make run`: the user's own programs as the peers, under capture, each pair in the lab at once.

Order of a run (captured at every vantage point, as the punch test):
1. NAT tables start empty; the pairs' mailboxes are emptied; captures start.
2. The A command runs in every pair's a peer and the B command in every b peer, all at once, each
   through peers.program_runner: bounded by the duration, its output in its own directory.
   What each program gets is in its environment (program_environment: the README's table).
3. Captures stop; each program's log and output directory, and each pair's mailbox, are copied
   beside the pcaps; run.json records the commands, how each program ended and the topology.
The scenario only acts and records; which path the programs' traffic took is decided from the
pcaps (lab.analysis.program_paths).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.errors import LabError, Progress
from lab.experiment.captures import Captures
from lab.experiment.live import live_topology
from lab.experiment.nat_control import flush_nat_state
from lab.experiment.punch_test import each, new_run_dir, point_latest
from lab.experiment.relay_credentials import turn_credentials
from lab.paths import mailbox_dir
from lab.run_format import RUN_FORMAT, RUN_RECORD
from lab.topology import Pair, Topology

EXPECTATIONS = ("direct", "relayed", "any")
MAX_DURATION_S = 3600


@dataclass(frozen=True)
class ProgramRunConfig:
    a: str  # the command line of every pair's a side
    b: str
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


def out_name(pair: Pair) -> str:
    """The program's output directory under the lab's shared directory (and its log's name in the run)."""
    return f"out-{pair.label}"


def empty(directory: Path) -> None:
    """Empty a directory, keeping it: a container bind-mounts the directory itself, not a path to it."""
    directory.mkdir(parents=True, exist_ok=True)
    for item in directory.iterdir():
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def program_environment(topology: Topology, pair: Pair, shared: str, files: str, duration_s: float,
                        turn: node_commands.TurnCredential | None) -> dict[str, str]:
    """What a program learns of the lab, one variable each (the README's table)."""
    partner = next(p for p in topology.pairs if p.number == pair.number and p.label != pair.label)
    env = {
        "NATLAB_SIDE": pair.side, "NATLAB_PAIR": str(pair.number), "NATLAB_LABEL": pair.label,
        "NATLAB_PARTNER": partner.label, "NATLAB_PRIVATE_IP": str(pair.private_ip),
        "NATLAB_STUN": f"{topology.broker.address}:{topology.broker_port}",
        "NATLAB_MAILBOX": f"{shared}/pair-{pair.number}", "NATLAB_OUT": f"{shared}/{out_name(pair)}",
        "NATLAB_FILES": files, "NATLAB_DURATION": f"{duration_s:g}",
    }
    if turn is not None:
        env.update(NATLAB_TURN=turn.server, NATLAB_TURN_USERNAME=turn.username, NATLAB_TURN_PASSWORD=turn.password)
    return env


def run_programs(engine: Engine, config: ProgramRunConfig, captures_root: Path, progress: Progress) -> Path:
    """Run the programs under capture; return the run directory (pcaps, logs, mailboxes, run.json)."""
    if not engine.is_up():
        raise LabError("the lab is not up: run `make lab-up` first")
    topology = engine.topology
    host_shared = mailbox_dir(topology.project)
    empty(host_shared)
    for pp in topology.punch_pairs:
        (host_shared / f"pair-{pp.number}").mkdir(parents=True)
    shared, files = engine.program_paths()
    turn = turn_credentials(engine, config.relay, config.duration_s)
    run_dir = new_run_dir(captures_root)
    progress(f"run {run_dir.name}: flushing NAT state, starting captures")
    each(lambda p: flush_nat_state(engine, p.router.name), topology.pairs)
    captures = Captures(engine)
    captures.start()
    record: dict = {"format": RUN_FORMAT, "kind": "programs", "run_id": run_dir.name, "started": time.time(),
                    "config": asdict(config)}
    try:
        progress(f"running A and B in {len(topology.punch_pairs)} pair(s) for at most {config.duration_s:g}s")

        def one(pair: Pair) -> dict:
            command = config.a if pair.side == "a" else config.b
            env = program_environment(topology, pair, shared, files, config.duration_s, turn.get(pair.label))
            return node_commands.run_program(command, env["NATLAB_OUT"], files, config.duration_s, env).run(
                engine, pair.peer.name)

        with ThreadPoolExecutor(len(topology.pairs)) as pool:
            record["programs"] = dict(zip((p.label for p in topology.pairs), pool.map(one, topology.pairs)))
    finally:
        progress("stopping captures, collecting pcaps, logs and mailboxes")
        time.sleep(0.3)
        captures.stop_and_collect(run_dir)
        record["finished"] = time.time()
        record["topology"] = live_topology(engine).to_json()
        for pair in topology.pairs:
            out = host_shared / out_name(pair)
            if (out / "program.log").exists():
                shutil.move(out / "program.log", run_dir / f"{pair.label}.log")
            if out.exists() and any(out.iterdir()):
                shutil.copytree(out, run_dir / out_name(pair))
        for pp in topology.punch_pairs:
            box = host_shared / f"pair-{pp.number}"
            if box.exists() and any(box.iterdir()):
                shutil.copytree(box, run_dir / f"mailbox-{pp.number}")
        (run_dir / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        point_latest(captures_root, run_dir)
    return run_dir

