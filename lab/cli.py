"""natlab's command line: `python -m lab COMMAND` (the Makefile's targets call these).

  up           stand the lab up (docker: installs Docker, builds the node image if missing;
               netns: network namespaces, no containers)
  down         remove every container / namespace and network of the lab
  status       show the topology and whether the lab is running
  punch-test   run the captured punch scenario, print the verdict from the pcaps, write the report
  verdict      re-check an existing run from its pcaps (default: captures/latest)
  report       write a run's report.md, ladder.png and merged.pcapng (default: captures/latest)
  show         print a run's flows and NAT tables (default: captures/latest)
  nat-set      change a router's NAT behaviour on the running lab (rules replaced, conntrack flushed)
  link-set     change a router's or the broker's access link on the running lab (in effect at once)
  classify     classify a peer's NAT (RFC 5780) and check it with natdiscovery and stun-client
  classify-all every NAT preset on one router, each classified three ways, as one table
  compose      regenerate compose.yaml from lab/topology.py (--check: only compare)

NAT settings (NAT_A / NAT_B / NAT_CARRIER, nat-set): a preset (port-restricted, full-cone, restricted-cone,
symmetric, symmetric-sequential, address-dependent), axes (mapping=eim|adm|apdm,
filtering=eif|adf|apdf, ports=preserve|sequential|random|block, hairpin=on|off, timeout=SECONDS;
block: a block of ports per LAN address, as carrier NATs do), or a preset followed by axes:
full-cone,hairpin=on,timeout=10.

Link settings (LINK_A / LINK_B / LINK_BROKER, link-set): a preset (lan, wifi, wifi-bad, mobile-4g,
mobile-3g, satellite, satellite-geo), axes (delay=50ms, jitter=10ms, loss=5%, rate=2mbit,
reorder=10%, duplicate=1%, corrupt=1%), or a preset followed by axes: wifi,loss=5%. Every figure is
one-way and holds in each direction of the link.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.engines.registry import ENGINES, make_engine
from lab.engines.rollback import forget_interrupts, interrupt, undone_on_failure
from lab.errors import DiskFull, LabError, disk_full
from lab.paths import PROJECT_DIR, captures_root
from lab.run_format import EXPECTATIONS, FAULTS, LATEST, PROGRAMS_KIND, RUN_RECORD, VERDICT_FILE, messages_for
from lab.topology import CARRIER_PRESET, SHAPES, STANDARD, NodeRole, Topology, TopologyError, build_topology
from nat.behaviour import DEFAULT_PRESET, PRESETS, UnknownPreset
from node.link import DEFAULT_LINK, UnknownLink

if TYPE_CHECKING:
    from lab.analysis.run import LoadedRun
    from lab.analysis.verdict import Verdict
    from lab.report.run_report import RunReport

def progress(message: str) -> None:
    print(f"[natlab {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit():
        raise SystemExit(f"natlab: error: {name} must be a whole number, not {value!r}")
    return int(value)


def cmd_up(args: argparse.Namespace, engine: Engine) -> int:
    started = time.monotonic()
    was_up = engine.is_up()
    engine.up(progress)  # first: what the CLI imports below, it does not wait for
    # Ctrl-C included: a lab-up that did not finish leaves nothing it made (one that was up stays up)
    with nullcontext() if was_up else undone_on_failure(lambda: engine.down(lambda _msg: None), progress):
        from lab.experiment.live import restore_configured
        from lab.report.terminal import topology_table

        if was_up:  # a lab made now has every NAT as configured; one that was up may have had nat-set
            restore_configured(engine, progress)
    progress(f"lab is up ({time.monotonic() - started:.1f}s)")
    print(topology_table(engine.topology))
    return 0


def cmd_down(args: argparse.Namespace, engine: Engine) -> int:
    engine.down(progress)
    progress("lab is down")
    return 0


def cmd_status(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.live import live_topology
    from lab.report.terminal import topology_table
    from node.link_control import MECHANISM

    up = engine.is_up()
    relay = engine.topology.relay
    answering = node_commands.relay_check().run(engine, relay.name)["answering"] if up and relay else None
    print(topology_table(live_topology(engine) if up else engine.topology, answering))
    print(f"\nlinks are conditioned by: {MECHANISM}; no netem needed")
    print(f"lab is {'up' if up else 'down'}")
    return 0 if up else 3


def save_verdict(run_dir: Path, verdict: Verdict) -> None:
    """verdict.json beside the run's pcaps, whole or not at all (written aside, then renamed)."""
    out = run_dir / VERDICT_FILE
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(json.dumps(verdict.to_json(), indent=2) + "\n")
    partial.replace(out)


def write_run_report(report: RunReport, verdict: Verdict) -> None:
    """Write the run's report beside its pcaps and say where."""
    files = report.write(verdict)
    print(f"report: {files.report}\nladder: {files.ladder}\nall captures merged: {files.merged}")


def cmd_punch_test(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.punch_test import PunchTestConfig, run_punch_test

    messages = messages_for(args.fault, args.messages)
    if messages != args.messages:
        progress(f"{args.fault}: {messages} messages each way, so that the exchange outlasts the fault")
    config = PunchTestConfig.for_pairs(len(engine.topology.punch_pairs), messages=messages,
                                       punch_delay_s=args.punch_delay, relay=args.relay, fault=args.fault or None,
                                       candidates=args.candidates)
    run_dir = run_punch_test(engine, config, captures_root(), progress)
    record = json.loads((run_dir / RUN_RECORD).read_text())
    for label, result in record.get("peers", {}).items():
        if result.get("killed"):
            progress(f"peer {label}: killed mid-exchange by the fault, as asked")
            continue
        rtt = f", rtt {result['rtt_ms']} ms" if result.get("rtt_ms") is not None else ""
        again = f", {result['retransmissions']} sent again" if result.get("retransmissions") else ""
        route = result.get("route") or "no path"
        fell = f" after {result['fell_back_after_s']}s direct" if result.get("fell_back_after_s") is not None else ""
        if result.get("upgraded_after_s") is not None:  # it fell back, then heard the partner directly after all
            fell = (f" (the relay tried after {result['fell_back_after_s']}s, "
                    f"direct again after {result['upgraded_after_s']}s)")
        fell += "".join(f", met again at {r['you']} after {r['after_s']}s" for r in result.get("reintroductions") or [])
        punched = ("no hole" if result.get("time_to_punch_s") is None
                   else f"punched in {result['time_to_punch_s']}s")
        progress(f"peer {label}: ok={result['ok']} {result['private']} -> {result['public']}, {route}{fell}, "
                 f"{punched}, sent {result['messages_sent']}, received {result['messages_received']}{again}{rtt}")
    verdict = judged_and_reported(run_dir, args.verbose, "pcaps, run.json and verdict.json")
    return 0 if verdict.ok else 1


def judged_and_reported(run_dir: Path, verbose: bool, written: str) -> Verdict:
    """A fresh run's verdict, saved and printed, then its report written (`written`: what the run
    directory holds, for the last line). A report that fails says so; the verdict stands."""
    from lab.analysis.run import read_run
    from lab.report.ladder_drawer import LadderDrawer
    from lab.report.run_report import RunReport
    from lab.report.terminal import verdict_table

    with LadderDrawer() as drawer:  # matplotlib loads in its process while the pcaps are read
        run = read_run(run_dir)
        report = RunReport(run, drawer)  # the ladder is drawn while the verdict is made
        verdict = verdict_of(run)
        try:
            save_verdict(run_dir, verdict)
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise DiskFull(f"no space left to write {run_dir / VERDICT_FILE}; the run's pcaps are "
                           f"kept: `make verdict RUN={run_dir.name}` once there is room") from None
        print(verdict_table(verdict, verbose=verbose))
        print(f"\n{written} in {run_dir}")
        try:
            write_run_report(report, verdict)
        except Exception as exc:  # noqa: BLE001  the verdict stands and decides the exit code; the report is extra
            print(f"natlab: error: the report could not be written ({exc!r}); "
                  f"retry with `make report RUN={run_dir.name}`", file=sys.stderr)
    return verdict


def run_dir_of(run: str | None) -> Path:
    """A run named on the command line (a directory or a run id), default captures/latest."""
    run_dir = Path(run) if run else captures_root() / LATEST
    if not (run_dir / RUN_RECORD).exists():
        candidate = captures_root() / run if run else run_dir
        if not (candidate / RUN_RECORD).exists():
            raise LabError(f"no run at {run_dir} (expected run.json and pcaps there)")
        run_dir = candidate
    return run_dir


def verdict_of(run: LoadedRun) -> Verdict:
    """A punch test's verdict, or a run of the user's programs' (run.json says which)."""
    from lab.analysis.program_verdict import judge_programs
    from lab.analysis.verdict import judge

    return judge_programs(run) if run.record.get("kind") == PROGRAMS_KIND else judge(run)


def cmd_verdict(args: argparse.Namespace, engine: Engine | None) -> int:
    from lab.analysis.run import read_run
    from lab.report.terminal import verdict_table

    run_dir = run_dir_of(args.run)
    verdict = verdict_of(read_run(run_dir))
    save_verdict(run_dir, verdict)
    print(verdict_table(verdict, verbose=args.verbose))
    return 0 if verdict.ok else 1


def cmd_report(args: argparse.Namespace, engine: Engine | None) -> int:
    from lab.analysis.run import read_run
    from lab.report.ladder_drawer import LadderDrawer
    from lab.report.run_report import RunReport
    from lab.report.terminal import verdict_summary

    run_dir = run_dir_of(args.run)
    with LadderDrawer() as drawer:
        run = read_run(run_dir)
        report = RunReport(run, drawer)
        verdict = verdict_of(run)
        print(f"run {verdict.run_id}: {verdict_summary(verdict)}")
        write_run_report(report, verdict)
    return 0


def cmd_run(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.user_run import ProgramRunConfig, run_programs

    config = ProgramRunConfig(a=args.a or "", b=args.b or "", wan=args.wan, duration_s=args.duration,
                              expect=args.expect, relay=args.relay)
    run_dir = run_programs(engine, config, captures_root(), progress)
    record = json.loads((run_dir / RUN_RECORD).read_text())
    for label, result in sorted(record.get("programs", {}).items()):
        code = f" with {result['exit_code']}" if result["ended"] == "exited" else ""
        left = (f", killed what it left running: {', '.join(result.get('left') or [])}"
                if result.get("left_running") else "")
        progress(f"program {label}: {result['ended']}{code} after {result['seconds']}s{left}; "
                 f"log {run_dir / (label + '.log')}")
    verdict = judged_and_reported(run_dir, args.verbose, "pcaps, logs, mailboxes, run.json and verdict.json")
    return 0 if verdict.ok else 1


def cmd_show(args: argparse.Namespace, engine: Engine | None) -> int:
    from lab.report.run_report import summary

    print(summary(run_dir_of(args.run)))
    return 0


def _router_pair(engine: Engine, node: str):
    """The pair a router or a peer belongs to (classification runs from the peer, acts on the router)."""
    for pair in engine.topology.pairs:
        if node in (pair.peer.name, pair.router and pair.router.name):
            if pair.router is None:
                raise LabError(f"{node!r} has no NAT to classify: it sits on the internet (public-peer)")
            if pair.carrier:
                raise LabError(f"{node!r} sits behind {pair.carrier.name}: its peer would classify both NATs at once "
                               "(classify a router of a lab without a carrier)")
            return pair
    names = ", ".join(n.name for p in engine.topology.pairs for n in (p.router, p.peer) if n)
    raise LabError(f"{node!r} is neither a router nor a peer; choose one of {names}")


def cmd_nat_set(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.nat_control import set_nat

    routers = [n.name for n in engine.topology.by_role(NodeRole.ROUTER)]
    peers = {p.peer.name: p.router.name for p in engine.topology.pairs if p.router}
    if any(p.peer.name == args.node and p.router is None for p in engine.topology.pairs):
        raise LabError(f"{args.node!r} has no NAT to set: it sits on the internet (public-peer)")
    if args.node not in [*routers, *peers]:
        raise LabError(f"{args.node!r} is neither a router nor a peer; choose one of "
                       f"{', '.join([*routers, *peers])}")
    router = peers.get(args.node, args.node)
    state = set_nat(engine, router, args.nat)
    print(f"{router}: {state['nat']} ({state['behaviour']}), firewall {'on' if state['firewall'] else 'off'}; "
          "conntrack flushed")
    return 0


def cmd_link_set(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.link_control import link_node, set_link
    from lab.report.terminal import link_text

    node = link_node(engine, args.node)
    state = set_link(engine, node.name, args.link)
    print(f"{node.name}: link {link_text(state['setting'])}, in force now ({state['mechanism']})")
    return 0


def cmd_classify(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.classification import Classification, independent_classifiers, own_classifier
    from lab.experiment.nat_control import live_nat
    from lab.report.terminal import classification_table
    from nat.behaviour import parse_nat

    pair = _router_pair(engine, args.node)
    setting = live_nat(engine, pair.router.name)["nat"]
    behaviour = parse_nat(setting)
    lifetime_max = behaviour.udp_timeout_s + 4 if args.lifetime_max is None else args.lifetime_max
    progress(f"classifying {pair.router.name} from {pair.peer.name} (own RFC 5780 classifier"
             + (f", mapping lifetime up to {lifetime_max:g}s)" if lifetime_max else ")"))
    own = own_classifier(engine, pair, lifetime_max)
    if args.own_only:
        print(json.dumps(own, indent=2))
        return 0
    progress("… and with turnutils_natdiscovery and stun-client")
    natdiscovery, stun_client = independent_classifiers(engine, pair, hairpin=True)
    row = Classification(pair.router.name, setting, behaviour, own, natdiscovery, stun_client)
    row.compare(check_lifetime=bool(lifetime_max))
    print(classification_table([row]))
    return 0 if not row.disagreements else 1


def cmd_classify_all(args: argparse.Namespace, engine: Engine) -> int:
    from lab.experiment.classification import classify_all
    from lab.report.terminal import classification_table
    from nat.behaviour import PRESETS

    pair = _router_pair(engine, args.node)
    settings = args.settings or list(PRESETS)
    rows = classify_all(engine, pair, settings, progress, args.lifetime_max)
    text = classification_table(rows)
    print(text)
    out = captures_root() / f"nat-classification-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    progress(f"table written to {out}")
    return 0 if all(not r.disagreements for r in rows) else 1


def cmd_matrix(args: argparse.Namespace, engine: Engine | None) -> int:
    from lab.analysis.matrix import Matrix, all_programs_failed, observe
    from lab.analysis.run import read_run
    from lab.experiment.matrix_run import MatrixConfig, run_matrix
    from lab.report.matrix_files import write_matrix
    from lab.report.matrix_text import terminal_grid

    def names(text: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))

    if args.topology not in (None, STANDARD):
        raise LabError(f"TOPOLOGY={args.topology}: the matrix builds a lab of its own, one pair per cell; ask for "
                       f"its shapes with SHAPES={args.topology} (comma-separated) and unset TOPOLOGY")
    programs = None
    if args.a or args.b:
        from lab.experiment.user_run import ProgramRunConfig

        programs = ProgramRunConfig(a=args.a or "", b=args.b or "", wan=args.wan, duration_s=args.duration)
    config = MatrixConfig(nats=names(args.nats), links=names(args.links), relay=args.relay, runs=args.runs,
                          messages=args.messages, programs=programs, shapes=names(args.shapes),
                          nat_carrier=args.nat_carrier or CARRIER_PRESET)
    project = f"{args.project[:16]}-mx"  # a lab of its own: the user's lab, if up, is left alone
    who = "your programs" if programs else "the lab's peers"
    progress(f"matrix of {who}: {len(config.cells)} cells ({len(config.nats)} NATs x {len(config.nats)}"
             + (f" x {len(config.links)} links" if len(config.links) > 1 else "")
             + (f", shapes {', '.join(config.shapes)}" if config.shapes != (STANDARD,) else "") + f"), relay {config.relay}, "
             f"{config.runs} run(s), {args.engine} lab {project}")
    matrix_dir, runs = run_matrix(lambda topology: make_engine(args.engine, topology), args.engine, project, config,
                                  captures_root(), progress)
    progress("reading the runs' pcaps, cell by cell")
    matrix = Matrix(config.nats, config.links, config.relay,
                    programs=programs and {"a": programs.a, "b": programs.b, "wan": programs.wan}, shapes=config.shapes)
    for run_dir in runs:
        observe(matrix, read_run(run_dir))
    files = write_matrix(matrix, matrix_dir)
    print(terminal_grid(matrix))
    if (failure := all_programs_failed(matrix)) is not None:
        progress(f"no program exited 0 in any cell (e.g. {failure}): check the command lines and MOUNT")
    print("\n" + "\n".join(str(f) for f in files))
    return 0 if not matrix.disagreements else 1


def cmd_host_tools(args: argparse.Namespace, engine: Engine | None) -> int:
    from lab.engines.host_packages import ensure_packages, require_root

    wanted = {}
    for item in args.tools:
        command, _, package = item.partition("=")
        if not command or not package:
            raise LabError(f"host-tools takes COMMAND=PACKAGE (edge=n2n), not {item!r}")
        wanted[command] = package
    if not all(shutil.which(c) for c in wanted):
        require_root("installing host tools")
        ensure_packages(wanted, progress)
    return 0


def cmd_compose(args: argparse.Namespace, engine: Engine | None) -> int:
    from lab.engines.docker.compose_file import render

    path = PROJECT_DIR / "compose.yaml"
    text = render(build_topology())
    if args.check:
        if not path.exists() or path.read_text() != text:
            raise LabError("compose.yaml differs from lab/topology.py: run `make compose`")
        print("compose.yaml matches lab/topology.py")
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """The user's programs, as `run` and `matrix` take them (each flag also read from its make variable)."""
    parser.add_argument("--a", default=os.environ.get("A") or None, help="side a's command line (env A)")
    parser.add_argument("--b", default=os.environ.get("B") or None, help="side b's command line (env B)")
    parser.add_argument("--wan", default=os.environ.get("WAN") or "",
                        help="a program of yours on the WAN host (a rendezvous or relay; env WAN), stopped when "
                        "the peers' programs end")
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DURATION") or 30),
                        help="seconds before the programs still running are stopped (env DURATION; 30)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", default=os.environ.get("ENGINE") or "docker", help=f"one of {', '.join(ENGINES)} (env ENGINE)")
    p.add_argument("--nat-a", default=os.environ.get("NAT_A") or None, help="NAT preset of router-a (env NAT_A)")
    p.add_argument("--nat-b", default=os.environ.get("NAT_B") or None, help="NAT preset of router-b (env NAT_B)")
    p.add_argument("--nat-carrier", default=os.environ.get("NAT_CARRIER") or None,
                   help=f"NAT of every pair's carrier, TOPOLOGY=cgnat only (env NAT_CARRIER; default {CARRIER_PRESET})")
    p.add_argument("--link-a", default=os.environ.get("LINK_A") or None,
                   help="access link of every pair's a side: a preset or axes (env LINK_A; default lan)")
    p.add_argument("--link-b", default=os.environ.get("LINK_B") or None, help="the same for the b side (env LINK_B)")
    p.add_argument("--link-broker", default=os.environ.get("LINK_BROKER") or None,
                   help="the broker's access link (env LINK_BROKER)")
    p.add_argument("--pairs", type=int, default=env_int("PAIRS", 1),
                   help="punch pairs, each two routers and two peers, around one broker (env PAIRS)")
    p.add_argument("--topology", default=os.environ.get("TOPOLOGY") or None,
                   help="the shape of every pair (env TOPOLOGY; give it to every command, as PAIRS): "
                   + "; ".join(f"{name}: {what}" for name, what in SHAPES.items())
                   + "; or a .toml file describing each pair (see lab/topology_file.py)")
    p.add_argument("--project", default=os.environ.get("NATLAB_PROJECT") or "natlab",
                   help="the lab's name: prefix of its containers or namespaces (env NATLAB_PROJECT)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="stand the lab up").set_defaults(func=cmd_up)
    sub.add_parser("down", help="tear the lab down").set_defaults(func=cmd_down)
    sub.add_parser("status", help="topology and state").set_defaults(func=cmd_status)
    rn = sub.add_parser("run", help="your own programs as the peers, captured; their path judged from the pcaps",
                        description="Runs --a in every pair's peer a and --b in every peer b, at once, under capture "
                        "(after --wan on the WAN host, when given, listens); their environment says what they need "
                        "(NATLAB_STUN, NATLAB_TURN..., NATLAB_MAILBOX, NATLAB_WAN; see the README). The path their "
                        "traffic took is decided from the pcaps alone.")
    add_program_arguments(rn)
    rn.add_argument("--expect", choices=EXPECTATIONS, default=os.environ.get("EXPECT") or "any",
                    help="the path the run must show (env EXPECT; local: private address to private address, "
                    "peers on one LAN; any: some path)")
    rn.add_argument("--relay", choices=node_commands.RELAY_MODES, default=os.environ.get("RELAY") or "auto",
                    help="off: the programs get no TURN credentials (env RELAY)")
    rn.add_argument("-v", "--verbose", action="store_true", help="show the evidence of every check")
    rn.set_defaults(func=cmd_run)
    pt = sub.add_parser("punch-test", help="captured rendezvous + punch + exchange, verified from pcaps")
    pt.add_argument("--messages", type=int, default=int(os.environ.get("MESSAGES") or 10), help="messages each way")
    pt.add_argument("--punch-delay", type=float, default=1.0, help="seconds peer b waits before probing")
    pt.add_argument("--relay", choices=node_commands.RELAY_MODES, default=os.environ.get("RELAY") or "auto",
                    help="auto: punch, fall back to the TURN relay; off: never relay; force: relayed only (env RELAY)")
    pt.add_argument("--candidates", choices=node_commands.CANDIDATE_MODES,
                    default=os.environ.get("CANDIDATES") or "all",
                    help="the partner's endpoints the peers probe (env CANDIDATES): all, public and private; public: "
                    "only the one the broker saw (peers on one LAN then meet only through a hairpinning NAT)")
    pt.add_argument("--fault", default=os.environ.get("FAULT") or None, metavar="|".join(FAULTS),
                    help="inject a fault (env FAULT): broker-restart (between the two registrations: the peers "
                    "must register again), peer-killed (the late peer SIGKILLed mid-exchange: its partner must "
                    "say so), rebinding (peer a's router flushes its conntrack and draws new ports mid-exchange: "
                    "the peers must meet again through the broker); check 8 of the verdict tells what it did")
    pt.add_argument("-v", "--verbose", action="store_true", help="show the evidence of every check")
    pt.set_defaults(func=cmd_punch_test)

    def on_a_run(name: str, func, text: str) -> argparse.ArgumentParser:
        """A command that reads a past run, engine-free."""
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("run", nargs="?", help="run directory or run id (default: captures/latest)")
        cmd.set_defaults(func=func, engine_free=True)
        return cmd

    v = on_a_run("verdict", cmd_verdict, "re-check a run from its pcaps")
    v.add_argument("-v", "--verbose", action="store_true")
    on_a_run("report", cmd_report, "write report.md, ladder.png and merged.pcapng of a run")
    on_a_run("show", cmd_show, "print a run's flows and NAT tables")
    ns = sub.add_parser("nat-set", help="change a router's NAT behaviour on the running lab")
    ns.add_argument("node", help="router (or its peer), e.g. router-a")
    ns.add_argument("nat", help="preset or axes, e.g. symmetric or full-cone,hairpin=on,timeout=10")
    ns.set_defaults(func=cmd_nat_set)
    ls = sub.add_parser("link-set", help="change a router's (or the broker's) access link on the running lab")
    ls.add_argument("node", help="router (or its peer), or broker, e.g. router-a")
    ls.add_argument("link", help="preset or axes, e.g. mobile-3g or delay=50ms,jitter=10ms,loss=5%%")
    ls.set_defaults(func=cmd_link_set)
    cl = sub.add_parser("classify", help="RFC 5780 classification of a peer's NAT, checked by two outside tools")
    cl.add_argument("node", help="peer (or its router), e.g. peer-a")
    cl.add_argument("--lifetime-max", type=float, default=None,
                    help="measure the mapping lifetime up to this many seconds (default: timeout + 4; 0: skip)")
    cl.add_argument("--own-only", action="store_true", help="only the lab's own classifier, as JSON")
    cl.set_defaults(func=cmd_classify)
    ca = sub.add_parser("classify-all", help="every preset on one router: configured vs three classifiers")
    ca.add_argument("node", nargs="?", default="router-a")
    ca.add_argument("--settings", nargs="*", help="NAT settings to try (default: every preset)")
    ca.add_argument("--lifetime-max", type=float, default=0)
    ca.set_defaults(func=cmd_classify_all)
    mx = sub.add_parser("matrix", help="every NAT pair punched at once: theory's path beside the pcaps'",
                        description="Stands up a lab of its own with one punch pair per cell (a's NAT x b's NAT, "
                        "for each link), punches them all at once RUNS times, and compares each cell's path in the "
                        "pcaps with the one RFC 4787 behaviours allow (nat/traversal.py). With --a and --b (A=, B=), every cell "
                        "runs your programs instead, as `run` does, and shows where they fall short of what the NATs "
                        "allow. Writes matrix.json, .md, "
                        ".html and .png; exits 1 if a cell is not as theory expects. The lab is taken down after.")
    mx.add_argument("--nats", default=os.environ.get("NATS") or ",".join(PRESETS),
                    help=f"comma-separated NAT presets or settings (env NATS; default all: {','.join(PRESETS)})")
    mx.add_argument("--links", default=os.environ.get("LINKS") or DEFAULT_LINK,
                    help=f"comma-separated links, both sides of each cell (env LINKS; {DEFAULT_LINK})")
    mx.add_argument("--relay", choices=node_commands.RELAY_MODES, default=os.environ.get("RELAY") or "auto",
                    help="the peers' relay mode (env RELAY); your programs get TURN credentials unless off")
    mx.add_argument("--runs", type=int, default=int(os.environ.get("RUNS") or 1),
                    help="punch each cell this many times: a success rate per cell (env RUNS; 1)")
    mx.add_argument("--messages", type=int, default=3, help="messages each way per run (3; the lab's peers)")
    mx.add_argument("--shapes", default=os.environ.get("SHAPES") or STANDARD,
                    help=f"comma-separated shapes, a grid each (env SHAPES; {STANDARD}; valid: {', '.join(SHAPES)}): "
                    "public-peer and same-lan have one column, b having no NAT of its own; cgnat's carriers have "
                    "NAT_CARRIER")
    add_program_arguments(mx)
    mx.set_defaults(func=cmd_matrix, engine_free=True)
    ht = sub.add_parser("host-tools", help="install the Debian package of each missing command (the tests' tools)",
                        description="For netns, where nodes run the host's programs: COMMAND=PACKAGE ... installs "
                        "PACKAGE where COMMAND is missing, without starting its services.")
    ht.add_argument("tools", nargs="+", metavar="COMMAND=PACKAGE")
    ht.set_defaults(func=cmd_host_tools, engine_free=True)
    c = sub.add_parser("compose", help="regenerate compose.yaml from the topology")
    c.add_argument("--check", action="store_true", help="fail if compose.yaml is out of date")
    c.set_defaults(func=cmd_compose, engine_free=True)
    return p


def topology_of(args: argparse.Namespace) -> Topology:
    """The lab the command is about: a topology file's (TOPOLOGY=*.toml, where the file says every pair's
    settings), or the standard builder's with the shape and the NAT and link settings given."""
    from lab.topology_file import is_topology_file, load_topology_file

    settings = ("nat_a", "nat_b", "nat_carrier", "link_a", "link_b", "link_broker")
    defaults = {"nat_a": DEFAULT_PRESET, "nat_b": DEFAULT_PRESET, "nat_carrier": CARRIER_PRESET}
    given = {k: getattr(args, k) for k in settings if getattr(args, k)}
    if args.topology and is_topology_file(args.topology):
        # The Makefile hands every setting on, the defaults too: only a setting of one's own is refused.
        own = [k.upper() for k, v in given.items() if v != defaults.get(k, DEFAULT_LINK)]
        if own or args.pairs != 1:
            named = ", ".join(own + (["PAIRS"] if args.pairs != 1 else []))
            raise LabError(f"TOPOLOGY={args.topology} says every pair's settings: {named} cannot be given beside it")
        return load_topology_file(Path(args.topology), args.project)
    return build_topology(**given, **({"shape": args.topology} if args.topology else {}), project=args.project,
                          pairs=args.pairs)


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():  # Ctrl-C is how a lab-up is rolled back
        signal.signal(signal.SIGINT, interrupt)  # even when started with SIGINT ignored
    forget_interrupts()
    args = parser().parse_args(argv)
    try:
        if getattr(args, "engine_free", False):
            return args.func(args, None)
        engine = make_engine(args.engine, topology_of(args))
        try:
            return args.func(args, engine)
        except DiskFull as exc:  # nothing of the lab is left half-done: no agent, no node, no namespace
            progress("the disk is full: taking the lab down")
            engine.down(progress)
            raise LabError(f"{exc}; the lab is down (`make lab-up` to start it again)") from None
    except (LabError, UnknownPreset, UnknownLink, TopologyError) as exc:
        print(f"natlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("natlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `make verdict | head`: the reader has gone, and nothing more is for it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
