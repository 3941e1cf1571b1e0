"""`make soak`: the lab kept busy for a long time (30 minutes by default), to find what only time shows.

    python -m bench.soak [--engine netns|docker] [--minutes 30] [--pairs 2]

One lab, up for the whole soak, runs a cycle of steps again and again until the time is over:
a punch test, a junk flood at the broker (peers.flood from the outsider), the broker restarted
between two registrations, a punch test, a NAT rebinding mid-exchange, another flood, a peer killed
mid-exchange. Every punch test's verdict is decided from its pcaps as `make punch-test` decides
it, and must pass, check 8 explaining each fault (a failed run's directory is kept, under
.bench/soak/, for `make verdict RUN=...`; a passed one is removed, so the disk does not fill).

After every step, each node's processes are read (node.process_stats: VmRSS and open file
descriptors), and the host's namespaces counted. The long-lived processes are those running at the
end of the first cycle (the warm baseline). What is bounded may still rise for a while: a relay
allocation of a killed peer lives its lifetime (10 minutes) before coturn frees it. So growth is
judged as soak tests judge it, by halves: what a process holds in the second half of the soak must
not pass the peak of the first half. The soak fails if:
- a long-lived process's memory in the second half passes the first half's peak by more than
  GROWTH_FACTOR and GROWTH_KB, or its descriptors by more than FD_SLACK;
- a long-lived process is gone, or a process that was not there is left running between steps;
- the host has more network or mount namespaces than at the baseline, or after lab-down than before
  lab-up;
- any verdict failed.

Figures to stdout (a table) and .bench/soak.json. The lab is taken down at the end, whatever
happens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict

from bench.lab_bench import say, write_figures
from lab.analysis.verdict import analyse_run
from lab.engines import node_commands
from lab.engines.base import Engine
from lab.engines.registry import ENGINES, make_engine
from lab.errors import LabError
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.paths import PROJECT_DIR
from lab.report.terminal import table
from lab.run_format import FAULT_BROKER_RESTART, FAULT_PEER_KILLED, FAULT_REBINDING, messages_for
from lab.topology import build_topology
from node.process_stats import processes

PROJECT = "natlab-soak"
CAPTURES = PROJECT_DIR / ".bench" / "soak"
PUNCH, FLOOD = "punch", "flood"
CYCLE = (PUNCH, FLOOD, FAULT_BROKER_RESTART, PUNCH, FAULT_REBINDING, FLOOD, FAULT_PEER_KILLED)
FLOOD_DATAGRAMS, FLOOD_RATE = 30_000, 10_000  # 3 s of junk a flood
GROWTH_FACTOR, GROWTH_KB = 1.25, 8192  # memory over both (past the first half's peak) is growth
FD_SLACK = 2

Key = tuple[str, int, str]  # node, pid, name


def host_namespaces() -> dict[str, int]:
    """Named network namespaces, and the network and mount namespaces any process is in."""
    net, mnt = set(), set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                net.add(os.readlink(f"/proc/{entry.name}/ns/net"))
                mnt.add(os.readlink(f"/proc/{entry.name}/ns/mnt"))
            except OSError:
                continue
    named = len(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else 0
    return {"named_netns": named, "net_namespaces": len(net), "mount_namespaces": len(mnt)}


def sample(engine: Engine) -> dict[Key, dict]:
    """Every process of every node, and the lab's own on the host (the netns fork server), by (node, pid, name)."""
    out = {}
    for node in engine.topology.nodes:
        for proc in node_commands.process_stats().run(engine, node.name):
            out[(node.name, proc["pid"], proc["name"])] = proc
    ours = set(engine.host_pids())
    for proc in processes():
        if proc["pid"] in ours:
            out[("host", proc["pid"], proc["name"])] = proc
    return out


class Soak:
    def __init__(self, engine: Engine, minutes: float) -> None:
        self.engine = engine
        self.minutes = minutes
        self.deadline = 0.0  # set when the soak starts (run), the lab up
        self.steps: list[dict] = []
        self.baseline: dict[Key, dict] | None = None
        self.baseline_ns: dict[str, int] | None = None
        self.peak_kb: dict[Key, int] = defaultdict(int)
        self.series: dict[Key, list[tuple[float, int, int]]] = defaultdict(list)  # from the baseline: (s, kB, fds)
        self.began = time.monotonic()
        self.strays: dict[Key, str] = {}  # processes seen between steps that the baseline has not
        self.kept: list[str] = []
        self.last: dict[Key, dict] = {}
        self.last_ns: dict[str, int] = {}
        self.before_up: dict[str, int] = {}  # the host's namespaces before lab-up, and after lab-down
        self.after_down: dict[str, int] = {}

    def punch(self, fault: str | None) -> tuple[bool, str]:
        config = PunchTestConfig.for_pairs(len(self.engine.topology.punch_pairs), messages=messages_for(fault, 10),
                                           fault=fault)
        run_dir = run_punch_test(self.engine, config, CAPTURES, lambda _m: None)
        verdict = analyse_run(run_dir)
        if verdict.ok:
            shutil.rmtree(run_dir)
            return True, "all checks passed"
        self.kept.append(str(run_dir))
        return False, "; ".join(f"check {c.id}: {c.detail}" for c in verdict.checks if not c.ok)[:300]

    def flood(self) -> tuple[bool, str]:
        topo = self.engine.topology
        target = f"{topo.broker.address}:{topo.broker_port}"
        sent = node_commands.flood(target, topo.broker_alt_port, FLOOD_DATAGRAMS, FLOOD_RATE, 60).run(
            self.engine, topo.outsider.name)
        return True, f"{sent['sent']} junk datagrams, {sent['replies']} answered"

    def step(self, kind: str) -> None:
        began = time.monotonic()
        try:
            ok, why = self.flood() if kind == FLOOD else self.punch(None if kind == PUNCH else kind)
        except LabError as exc:
            ok, why = False, str(exc).splitlines()[0][:300]
        took = time.monotonic() - began
        self.steps.append({"step": kind, "ok": ok, "seconds": round(took, 1), "why": why})
        self.watch()
        left = max(0.0, self.deadline - time.monotonic())
        say(f"{left / 60:4.1f} min left: step {len(self.steps)} {kind}: {'ok' if ok else 'FAILED'} "
            f"({took:.1f}s) {'' if ok else why}")

    def watch(self) -> None:
        now = sample(self.engine)
        for key, proc in now.items():
            self.peak_kb[key] = max(self.peak_kb[key], proc["rss_kb"])
            if self.baseline is not None and key not in self.baseline:
                self.strays.setdefault(key, f"step {len(self.steps)} ({self.steps[-1]['step']})")
        self.last, self.last_ns = now, host_namespaces()
        if self.baseline is not None:
            self.record()

    def record(self) -> None:
        """The long-lived processes' holdings now, in their series."""
        at = round(time.monotonic() - self.began, 1)
        for key in self.baseline or {}:
            if key in self.last:
                self.series[key].append((at, self.last[key]["rss_kb"], self.last[key]["fds"]))

    def run(self) -> None:
        self.deadline = time.monotonic() + 60 * self.minutes
        while True:
            for kind in CYCLE:
                self.step(kind)
            if self.baseline is None:
                self.baseline, self.baseline_ns = self.last, self.last_ns
                self.record()
                say(f"baseline taken: {len(self.baseline)} processes in {len(self.engine.topology.nodes)} nodes")
            if time.monotonic() >= self.deadline:
                return

    def findings(self) -> list[str]:
        """What is wrong at the end, one line each (nothing: the soak passed)."""
        wrong = [f"step {i + 1} ({s['step']}) failed: {s['why']}" for i, s in enumerate(self.steps) if not s["ok"]]
        for key in self.baseline or {}:
            node, pid, name = key
            if key not in self.last:
                wrong.append(f"{node}: {name} (pid {pid}) is gone")
                continue
            halves = self.halves(key)
            if halves is None:
                continue
            (kb1, fds1), (kb2, fds2) = halves
            if kb2 > kb1 * GROWTH_FACTOR and kb2 - kb1 > GROWTH_KB:
                wrong.append(f"{node}: {name} kept growing: {kb2} kB in the second half, {kb1} kB at most in the first")
            if fds2 > fds1 + FD_SLACK:
                wrong.append(f"{node}: {name} kept taking file descriptors: {fds2} in the second half, "
                             f"{fds1} at most in the first")
        wrong += [f"{node}: {name} (pid {pid}) left running, first seen after {when}"
                  for (node, pid, name), when in self.strays.items()]
        for what, count in self.last_ns.items():
            if self.baseline_ns and count > self.baseline_ns[what]:
                wrong.append(f"host: {what} {count}, {self.baseline_ns[what]} at the baseline")
        for what, count in self.after_down.items():
            if count > self.before_up[what]:
                wrong.append(f"host after lab-down: {what} {count}, {self.before_up[what]} before lab-up")
        return wrong

    def halves(self, key: Key) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The peak (kB, fds) of a long-lived process in the first half of its series and in the second;
        None while there is no second half (a soak of one cycle cannot tell growth)."""
        series = self.series.get(key, [])
        if len(series) < 2:
            return None
        middle = (series[0][0] + series[-1][0]) / 2
        first = [s for s in series if s[0] <= middle]
        second = [s for s in series if s[0] > middle]
        return ((max(s[1] for s in first), max(s[2] for s in first)),
                (max(s[1] for s in second), max(s[2] for s in second)))

    def figures(self) -> dict:
        by_kind: dict[str, list[dict]] = defaultdict(list)
        for s in self.steps:
            by_kind[s["step"]].append(s)
        base, last = self.baseline or {}, self.last
        return {
            "steps": len(self.steps),
            "by_step": {k: {"runs": len(v), "ok": sum(s["ok"] for s in v),
                            "median_s": statistics.median(s["seconds"] for s in v)} for k, v in by_kind.items()},
            "processes": [{"node": k[0], "name": k[2], "pid": k[1], "rss_kb_baseline": p["rss_kb"],
                           "rss_kb_end": last.get(k, {}).get("rss_kb"), "rss_kb_peak": self.peak_kb[k],
                           "fds_baseline": p["fds"], "fds_end": last.get(k, {}).get("fds"),
                           "halves": self.halves(k), "series": self.series.get(k, [])}
                          for k, p in sorted(base.items())],
            "namespaces_baseline": self.baseline_ns, "namespaces_end": self.last_ns,
            "namespaces_before_up": self.before_up, "namespaces_after_down": self.after_down,
            "failed_runs_kept": self.kept,
        }


def report(soak: Soak, minutes: float, engine: str) -> list[str]:
    figures, wrong = soak.figures(), soak.findings()
    rows = [[kind, f"{f['ok']}/{f['runs']}", f"{f['median_s']:.1f}"] for kind, f in figures["by_step"].items()]
    print(table(rows, ["step", "passed", "median s"]))

    def by_halves(p: dict, i: int) -> str:
        return "-" if p["halves"] is None else f"{p['halves'][0][i]} / {p['halves'][1][i]}"

    rows = [[p["node"], p["name"], str(p["rss_kb_baseline"]), str(p["rss_kb_end"]), by_halves(p, 0),
             f"{p['fds_baseline']} -> {p['fds_end']}", by_halves(p, 1)] for p in figures["processes"]]
    print(table(rows, ["node", "process", "RSS kB baseline", "end", "peak 1st / 2nd half", "fds",
                       "peak 1st / 2nd half"]))
    print(table([[k, str(soak.before_up.get(k)), str(v), str(soak.last_ns.get(k)), str(soak.after_down.get(k))]
                 for k, v in (soak.baseline_ns or {}).items()],
                ["host namespaces", "before lab-up", "baseline", "end", "after lab-down"]))
    print("\n".join(["soak: " + ("passed: every verdict passed, nothing grew or leaked" if not wrong else
                                 f"{len(wrong)} finding(s):"), *(f"  - {w}" for w in wrong)]))
    write_figures("soak.json", {"engine": engine, "minutes": minutes, "findings": wrong, **figures})
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=ENGINES, default="netns")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to soak (at least one whole cycle)")
    parser.add_argument("--pairs", type=int, default=2, help="punch pairs in the lab")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.pairs < 1:
        parser.error("--minutes must be above 0 and --pairs at least 1")
    engine = make_engine(args.engine, build_topology(project=PROJECT, pairs=args.pairs))
    say(f"soak on {args.engine}: {args.pairs} pairs, {args.minutes:g} min, cycle {' / '.join(CYCLE)}")
    soak = Soak(engine, args.minutes)
    soak.before_up = host_namespaces()
    try:
        engine.up(say)
        soak.run()
    except LabError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.down(say)
        soak.after_down = host_namespaces()
    return 1 if report(soak, args.minutes, args.engine) else 0

if __name__ == "__main__":
    sys.exit(main())
