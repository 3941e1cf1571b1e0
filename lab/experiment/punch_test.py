"""The punch test: controls, rendezvous, hole punch and direct exchange, all under capture.

Order of a run (every step captured at the broker and at both sides of every router):
1. NAT tables start empty: conntrack is flushed on every router.
2. Control "no bypass": with a router's forwarding off, its peer pings the broker; nothing
   may get through (the peer has no other way out).
3. Control "unsolicited": the outsider, a WAN host that routes each LAN at its router, sends to
   each peer's private address; the router must drop it.
4. Rendezvous and punch: both peers register with the room's secret, minted for the run on the
   broker's node; the late peer waits `punch_delay_s` after the
   introduction before probing, so the early peer's first probes reach the late peer's NAT
   unsolicited and must be dropped there. Then N numbered messages cross each way, directly.
With several punch pairs (PAIRS=N) every step is done for every pair, pairs at once: each pair
meets in a room of its own; a router's two controls never overlap, since "unsolicited" must meet
the firewall, not a router whose forwarding is off.
The scenario only acts and records; whether it all held is decided from the pcaps (lab.analysis.verdict).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.engines.node_commands import CANDIDATE_MODES, RELAY_MODES
from lab.errors import DiskFull, LabError, Progress, disk_full
from lab.experiment.captures import Captures
from lab.experiment.link_control import read_back
from lab.experiment.live import live_topology, require_up
from lab.experiment.nat_control import flush_nat_state, live_nat, set_nat
from lab.experiment.relay_credentials import turn_credentials
from lab.experiment.room_secrets import mint_many
from lab.run_format import (
    FAULT_BROKER_RESTART,
    FAULT_PEER_KILLED,
    FAULT_REBINDING,
    FAULTS,
    LATEST,
    MID_EXCHANGE_FAULTS,
    RUN_FORMAT,
    RUN_RECORD,
    TAG_NO_BYPASS,
    TAG_UNSOLICITED,
    tag,
)
from lab.topology import STANDARD, NodeRole, Pair, PunchPair, pairs_by_router
from node.link import parse_link

PARALLEL = 256  # commands run at once: every pair's control at the same time, as the punch runs every peer
RESTART_AFTER_S = 1.0  # side a's first register is long at the broker by then (the captures show it)
FAULT_AFTER_S = 1.5  # a mid-exchange fault: after the late side's start and its punch delay, the exchange is under way


@dataclass(frozen=True)
class PunchTestConfig:
    messages: int = 10
    late_peer: str = "b"  # the side of every pair that starts probing late
    punch_delay_s: float = 1.0
    timeout_s: float = 20.0
    unsolicited_port: int = 40000
    relay: str = "auto"  # the peers' relay mode: auto (fall back), off, force (relayed only)
    candidates: str = "all"  # the partner's endpoints the peers probe: all (public and private) or public only
    fault: str | None = None  # one of FAULTS, injected into the rendezvous and exchange

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise LabError(f"FAULT must be one of {', '.join(FAULTS)}, not {self.fault!r}")
        if not 1 <= self.messages <= 10_000:
            raise LabError(f"messages must be between 1 and 10000, not {self.messages}")
        if self.relay not in RELAY_MODES:
            raise LabError(f"RELAY must be one of {', '.join(RELAY_MODES)}, not {self.relay!r}")
        if self.candidates not in CANDIDATE_MODES:
            raise LabError(f"CANDIDATES must be one of {', '.join(CANDIDATE_MODES)}, not {self.candidates!r}")

    @classmethod
    def for_pairs(cls, pairs: int, **settings) -> PunchTestConfig:
        """The settings for a lab of `pairs` punch pairs: hundreds of peers starting at once on a small
        machine reach the broker seconds apart, so each peer's time grows with the lab."""
        return cls(timeout_s=max(cls.timeout_s, 10 + 0.25 * pairs), **settings)


def room(base: str, punch_pair: PunchPair) -> str:
    """The broker room of a punch pair: pair 1 meets in `base` (the run id), pair k in `base`-k."""
    return base if punch_pair.number == 1 else f"{base}-{punch_pair.number}"


def each(work, items: list) -> list:
    """`work` on every item, PARALLEL at a time; results in the items' order."""
    if not items:
        return []
    with ThreadPoolExecutor(min(PARALLEL, len(items))) as pool:
        return list(pool.map(work, items))


def new_run_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        run_dir = root / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise LabError(f"cannot create a run directory under {root}")


@contextmanager
def whole_or_nothing(run_dir: Path) -> Iterator[None]:
    """Writing a run's files: a disk that fills up on the way leaves no half-written run behind (a run
    without some of its pcaps would be judged on missing evidence), and says so in one line."""
    try:
        yield
    except OSError as exc:
        if not disk_full(exc):
            raise
        shutil.rmtree(run_dir, ignore_errors=True)
        raise DiskFull(f"no space left on the disk of {run_dir.parent} while writing run {run_dir.name}: "
                       "nothing of it was kept; free some space there, or point NATLAB_CAPTURES at a larger "
                       "disk") from None


def point_latest(root: Path, run_dir: Path) -> None:
    latest = root / LATEST
    tmp = root / ".latest.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    tmp.replace(latest)


def control_no_bypass(engine: Engine, behind: list[Pair], broker: str) -> list[dict]:
    """With the router's forwarding off, each of its peers (one, or a same-lan router's two) tries the broker."""
    router = behind[0].router.name
    engine.set_forwarding(router, False)
    try:
        with ThreadPoolExecutor(len(behind)) as pool:
            return list(pool.map(lambda pair: node_commands.reach([(broker, tag(TAG_NO_BYPASS, pair))], 3, 0.3)
                                 .run(engine, pair.peer.name)[0], behind))
    finally:
        engine.set_forwarding(router, True)
        flush_nat_state(engine, router)


def control_unsolicited(engine: Engine, pairs: list[Pair], port: int) -> dict[str, dict]:
    """The outsider pings every pair's private address at once (one process), each ping tagged by pair."""
    targets = [(f"{pair.private_ip}:{port}", tag(TAG_UNSOLICITED, pair)) for pair in pairs]
    outcomes = node_commands.reach(targets, 2, 0.3).run(engine, engine.topology.outsider.name)
    return {pair.label: outcome for pair, outcome in zip(pairs, outcomes)}


def punch(engine: Engine, config: PunchTestConfig, base_room: str, broker: str,
          fault: dict | None = None) -> dict[str, dict]:
    """Every pair at once, each in its room with the room's secret; side a registers first, then the late
    side. With a fault, `fault` (run.json's record of it) gets what was done and when."""
    punch_pairs = engine.topology.punch_pairs
    secrets = mint_many(engine, [room(base_room, pp) for pp in punch_pairs])
    turn = turn_credentials(engine, config.relay, config.timeout_s)
    kind, fault = config.fault, {} if fault is None else fault
    late = [pp.b if config.late_peer == "b" else pp.a for pp in punch_pairs]
    early = [pp.a if config.late_peer == "b" else pp.b for pp in punch_pairs]
    victims = {pair.label for pair in late} if kind == FAULT_PEER_KILLED else set()

    def one(pair: Pair, pair_room: str) -> dict:
        delay = config.punch_delay_s if pair.side == config.late_peer else 0.0
        command = node_commands.punch(broker, pair_room, pair.label, secrets[pair_room], config.messages, delay,
                                      config.timeout_s, config.relay, turn.get(pair.label), config.candidates)
        try:
            return command.run(engine, pair.peer.name)
        except LabError as exc:
            if pair.label not in victims:
                raise
            return {"peer": pair.label, "ok": False, "killed": True, "error": f"killed by the lab ({exc})"[:300]}

    with ThreadPoolExecutor(2 * len(punch_pairs)) as pool:
        futures = {}
        for side in ("a", "b"):
            for pp in punch_pairs:
                pair = pp.a if side == "a" else pp.b
                futures[pair.label] = pool.submit(one, pair, room(base_room, pp))
            time.sleep(0.2)  # the first peer waits in the room: the order the ladder shows
            if side == "a" and kind == FAULT_BROKER_RESTART:
                time.sleep(RESTART_AFTER_S)
                restart_broker(engine, fault)
        if kind in MID_EXCHANGE_FAULTS:
            time.sleep(config.punch_delay_s + FAULT_AFTER_S)
        if kind == FAULT_PEER_KILLED:
            kill_peers(engine, victims, fault)
        rebound = rebind(engine, sorted({pair.router.name for pair in early}), fault) if kind == FAULT_REBINDING else {}
        try:
            return {label: f.result() for label, f in futures.items()}
        finally:
            each(lambda item: set_nat(engine, *item), list(rebound.items()))


def rebind(engine: Engine, routers: list[str], fault: dict) -> dict[str, str]:
    """The rebinding fault: each router's NAT state forgotten and its ports drawn anew (its setting with
    ports=random; rules replaced, conntrack flushed). Returns each router's setting, to put back."""
    settings = dict(zip(routers, each(lambda router: live_nat(engine, router)["nat"], routers)))
    fault["at"] = time.time()
    each(lambda router: set_nat(engine, router, f"{settings[router]},ports=random"), routers)
    fault["back"] = time.time()
    fault["routers"] = settings
    return settings


def restart_broker(engine: Engine, fault: dict) -> None:
    """The broker-restart fault: its service restarts while side a waits in the rooms."""
    fault["at"] = time.time()
    node_commands.broker_restart().run(engine, engine.topology.broker.name)
    fault["back"] = time.time()


def kill_peers(engine: Engine, victims: set[str], fault: dict) -> None:
    """The peer-killed fault: SIGKILL each victim's peer; one that had already finished is named."""
    nodes = {p.label: p.peer.name for p in engine.topology.pairs}
    labels = sorted(victims)
    fault["at"] = time.time()
    outcomes = dict(zip(labels, each(lambda label: node_commands.kill_peer(label).run(engine, nodes[label]), labels)))
    fault["back"] = time.time()
    fault["killed"] = [label for label in labels if outcomes[label]["ok"]]
    fault["missed"] = {label: outcomes[label]["error"] for label in labels if not outcomes[label]["ok"]}


def run_punch_test(engine: Engine, config: PunchTestConfig, captures_root: Path, progress: Progress) -> Path:
    """Run the scenario under capture; return the run directory (pcaps + run.json)."""
    require_up(engine)
    topology = engine.topology
    if config.fault == FAULT_REBINDING and (odd := sorted({pp.shape for pp in topology.punch_pairs} - {STANDARD})):
        raise LabError(f"FAULT=rebinding rebinds each pair's router-a and watches both routers' WANs, which a "
                       f"{'/'.join(odd)} pair does not have: use it with TOPOLOGY=standard")
    broker = f"{topology.broker.address}:{topology.broker_port}"
    run_dir = new_run_dir(captures_root)
    progress(f"run {run_dir.name}: flushing NAT state, starting captures")
    pairs = topology.pairs
    groups = pairs_by_router(pairs)
    each(lambda r: flush_nat_state(engine, r.name), topology.by_role(NodeRole.ROUTER))  # carriers' too
    captures = Captures(engine)
    captures.start()
    record: dict = {"format": RUN_FORMAT, "run_id": run_dir.name, "started": time.time(), "config": asdict(config),
                    "room": run_dir.name}
    try:
        progress("control: routers' forwarding off, peers try the broker")
        outcomes = each(lambda group: control_no_bypass(engine, group, broker), groups)
        record["no_bypass"] = {pair.label: outcome for group, found in zip(groups, outcomes)
                               for pair, outcome in zip(group, found)}
        progress("control: the outsider sends to the peers' private addresses")
        record["unsolicited"] = control_unsolicited(engine, pairs, config.unsolicited_port)
        count = len(topology.punch_pairs)
        progress(f"rendezvous + punch{f' of {count} pairs at once' if count > 1 else ''} "
                 f"({config.late_peer} starts probing {config.punch_delay_s}s late)")
        fault = record["fault"] = {"kind": config.fault} if config.fault else None
        if fault:
            progress(f"fault: {config.fault}")
        record["peers"] = punch(engine, config, record["room"], broker, fault)
    finally:
        progress("stopping captures, collecting pcaps")
        time.sleep(0.3)  # let the last packets reach every sniffer
        with whole_or_nothing(run_dir):
            captures.stop_and_collect(run_dir)
            record["finished"] = time.time()
            live = live_topology(engine)
            record["topology"] = live.to_json()
            # what a conditioned link installed, read back from its node (a perfect link installs nothing)
            record["link_conditions"] = read_back(engine, [n for n in live.nodes
                                                           if n.link and not parse_link(n.link).is_perfect])
            record["links"] = dict(zip((n.name for n in topology.nodes),
                                       each(lambda n: engine.link_addresses(n.name), list(topology.nodes))))
            (run_dir / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
            point_latest(captures_root, run_dir)
    return run_dir
