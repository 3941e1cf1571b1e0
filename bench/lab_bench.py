"""`make bench`: how long the lab takes to stand up and to punch, per engine, side by side.

Figures (printed as a table and written to .bench/lab.json), for each engine asked for
(`--engine docker|netns`, default both):
- Docker's cold lab-up: the node image rebuilt from the cached base image
- lab-up, lab-down and the two together: warm (Docker's image present), the default lab,
  median of --cycles
- netns / docker: the ratio of those (only when both engines ran; the goal is <= 0.1)
- netns: the whole run (up, punch-test, down) at MAX_PAIRS beside its goal, 30 s
- netns: lab-up and lab-down of the cgnat shape (two home routers behind a carrier NAT per pair) at 50 pairs
- largest PAIRS punched: the sizes of SIZES in turn (lab-up, punch-test, lab-down, each timed),
  up to the first size whose verdict is not 100% pass; the whole run's time is reported per size,
  and a size that fails is a figure too (what failed, and the line that says why); the largest
  netns size is the topology's MAX_PAIRS (the public segments' addresses: the lab refuses more,
  saying so); Docker's series stops once --docker-budget-s have gone (the sizes left are marked so)
- time to punch: from the introduction to the first packet heard from the partner, both peers
  probing at once, over --runs runs on fresh NAT state (median and 90th percentile), PAIRS=1
Timing belongs here, never in the tests: machines are shared and noisy. Every lab is taken down
at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lab.engines.base import Engine
from lab.engines.docker.compose_file import NODE_IMAGE
from lab.engines.registry import ENGINES, make_engine
from lab.experiment.nat_control import flush_nat_state
from lab.experiment.punch_test import PunchTestConfig, punch
from lab.paths import PACKAGES, PROJECT_DIR
from lab.report.terminal import table
from lab.topology import CGNAT, MAX_PAIRS, build_topology

SIZES = {"netns": [1, 10, 50, 100, 150, 200, MAX_PAIRS], "docker": [1, 5, 10, 20, 50]}
DOCKER_BUDGET_S = 1800.0  # Docker's series of sizes stops past this (a 50-pair lab is 200 containers)
WHOLE_RUN_GOAL_S = 30.0  # netns: lab-up, punch-test and lab-down of the largest lab (MAX_PAIRS)
PROJECT = "natlab-bench"  # never the project of a lab someone has up


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


BENCH_CAPTURES = PROJECT_DIR / ".bench" / "captures"


def cli_env(engine: str, pairs: int = 1, **extra_env: str) -> dict[str, str]:
    """The environment of a bench's `python -m lab`: its engine and size, the bench's project and captures."""
    return {**os.environ, "ENGINE": engine, "PAIRS": str(pairs), "NATLAB_PROJECT": PROJECT,
            "NATLAB_CAPTURES": str(BENCH_CAPTURES), **extra_env}


def cli(engine: str, *args: str, pairs: int = 1, check: bool = True, **extra_env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lab", *args], cwd=PROJECT_DIR,
                          env=cli_env(engine, pairs, **extra_env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"{engine}: lab {' '.join(args)} (PAIRS={pairs}) failed:\n{proc.stdout}{proc.stderr}")
    return proc


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@contextmanager
def netns_lab(project: str, pairs: int) -> Iterator[Engine]:
    """A netns lab of `pairs` pairs for a bench's figures, down again afterwards whatever happens."""
    engine = make_engine("netns", build_topology(project=project, pairs=pairs))
    say(f"netns lab of {pairs} pairs")
    engine.up(lambda _m: None)
    try:
        yield engine
    finally:
        engine.down(lambda _m: None)


def show_figures(name: str, results: dict, where: str = "netns") -> None:
    """The figures as a table, then written (write_figures)."""
    rows = [[key, json.dumps(value)] for key, value in results.items()]
    print(table(rows, [f"figure ({where})", "value (ratio <= 1 meets the goal)"]))
    write_figures(name, results)


def write_figures(name: str, results: dict) -> None:
    """The figures as JSON under .bench/, with when they were taken."""
    out = PROJECT_DIR / ".bench" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), **results}, indent=2) + "\n")
    print(f"\nwritten to {out}; every bench lab is down", file=sys.stderr)


def cold_up(engine: str) -> float:
    """Docker: seconds of a lab-up that must rebuild the node image without any build cache (the
    bootstrapped or pulled base image stays)."""
    cli(engine, "down")
    subprocess.run(["docker", "image", "rm", "-f", NODE_IMAGE], capture_output=True)
    seconds = timed(lambda: cli(engine, "up", NATLAB_BUILD_NO_CACHE="1"))
    cli(engine, "down")
    return seconds


def warm_bytecode() -> None:
    """Compile the project's modules once, as any machine that has run natlab has them. Where
    PYTHONDONTWRITEBYTECODE is set (this kind of machine sets it), nothing else writes them, and
    every command would compile its modules from source before the clock could be fair."""
    import compileall

    for package in PACKAGES:
        compileall.compile_dir(PROJECT_DIR / package, quiet=1)


def up_down(engine: str, cycles: int) -> dict:
    """Median seconds of a warm lab-up, of lab-down, and of the two together, for the default lab."""
    cli(engine, "down")
    cli(engine, "up")  # warm: installs, images and byte-code are there before the clock starts
    cli(engine, "down")
    ups, downs = [], []
    for _ in range(cycles):
        ups.append(timed(lambda: cli(engine, "up")))
        downs.append(timed(lambda: cli(engine, "down")))
    return {"warm_up_s": round(statistics.median(ups), 2), "down_s": round(statistics.median(downs), 2),
            "up_down_s": round(statistics.median(u + d for u, d in zip(ups, downs)), 2)}


CGNAT_PAIRS = 50  # netns: lab-up + lab-down of the cgnat shape at this size


def cgnat_up_down(pairs: int = CGNAT_PAIRS) -> dict:
    """netns: seconds of one lab-up and one lab-down of `pairs` cgnat pairs (three routers per pair), warm;
    a lab-up that fails is a figure (why), and the lab goes down whatever happens."""
    settings = {"TOPOLOGY": CGNAT}
    cli("netns", "down", pairs=pairs, check=False, **settings)
    try:
        start = time.monotonic()
        proc = cli("netns", "up", pairs=pairs, check=False, **settings)
        up = time.monotonic() - start
        if proc.returncode != 0:
            return {"failed": why(proc)}
        down = timed(lambda: cli("netns", "down", pairs=pairs, **settings))
        return {"up_s": round(up, 2), "down_s": round(down, 2), "up_down_s": round(up + down, 2)}
    finally:
        cli("netns", "down", pairs=pairs, check=False, **settings)


def why(proc: subprocess.CompletedProcess) -> str:
    """The line of a failed command that says why: its error, else the verdict's summary, else its last."""
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    said = [line for line in lines if line.startswith("natlab: error:") or "FAILED" in line]
    return (said or lines or [f"exit {proc.returncode}"])[-1][:300]


def largest_punched(engine: str, sizes: list[int], budget_s: float | None = None) -> list[dict]:
    """Each size in turn until one does not pass 100%: the times of its up, punch-test and down; a size
    that fails says what failed and why; past `budget_s` the sizes left are skipped, and say so."""
    rows = []
    started = time.monotonic()
    for pairs in sizes:
        if budget_s is not None and time.monotonic() - started > budget_s:
            rows.append({"pairs": pairs, "all_pass": False, "skipped": f"past the {budget_s:g}s time budget"})
            continue
        say(f"{engine}: PAIRS={pairs}")
        row: dict = {"pairs": pairs, "all_pass": False}
        try:
            start = time.monotonic()
            up = cli(engine, "up", pairs=pairs, check=False)
            row["up_s"] = round(time.monotonic() - start, 1)
            if up.returncode != 0:
                row["failed"] = f"lab-up: {why(up)}"
            else:
                start = time.monotonic()
                proc = cli(engine, "punch-test", pairs=pairs, check=False)
                row["punch_test_s"] = round(time.monotonic() - start, 1)
                row["all_pass"] = proc.returncode == 0
                if not row["all_pass"]:
                    row["failed"] = f"punch-test: {why(proc)}"
        finally:
            start = time.monotonic()
            down = cli(engine, "down", pairs=pairs, check=False)
            row["down_s"] = round(time.monotonic() - start, 1)
            if down.returncode != 0:
                row["failed"] = (row.get("failed", "") + f"; lab-down: {why(down)}").lstrip("; ")
        if row["all_pass"]:
            row["whole_run_s"] = round(row["up_s"] + row["punch_test_s"] + row["down_s"], 1)
        rows.append(row)
        say(f"{engine}: {row}")
        if not row["all_pass"]:
            break
    return rows


def time_to_punch(engine: Engine, runs: int) -> list[float]:
    """Per run: seconds until both peers had heard each other (the slower of the two)."""
    broker = f"{engine.topology.broker.address}:{engine.topology.broker_port}"
    config = PunchTestConfig(messages=1, late_peer="", punch_delay_s=0.0, timeout_s=10)
    out = []
    for i in range(runs):
        for pair in engine.topology.pairs:
            flush_nat_state(engine, pair.router.name)
        results = punch(engine, config, f"bench-{time.time_ns()}-{i}", broker)
        if not all(r["ok"] for r in results.values()):
            raise SystemExit(f"run {i} did not punch: {results}")
        out.append(max(r["time_to_punch_s"] for r in results.values()))
    return out


def bench_engine(name: str, args: argparse.Namespace) -> dict:
    figures: dict = {}
    if name == "docker":
        say("docker: cold lab-up (node image rebuilt from the cached base image)")
        figures["cold_up_s"] = round(cold_up(name), 2)
    say(f"{name}: lab-up + lab-down, {args.cycles} cycles")
    figures.update(up_down(name, args.cycles))
    if name == "netns":
        say(f"netns: lab-up + lab-down of TOPOLOGY={CGNAT} at PAIRS={CGNAT_PAIRS}")
        figures[f"cgnat_{CGNAT_PAIRS}_pairs"] = cgnat_up_down()
    sizes = [s for s in SIZES[name] if s <= args.max_pairs]
    rows = largest_punched(name, sizes, args.docker_budget_s if name == "docker" else None)
    passed = [r for r in rows if r["all_pass"]]
    figures["sizes"] = rows
    figures["punch_test_s_pairs_1"] = rows[0]["punch_test_s"] if rows else None
    figures["largest_pairs_all_pass"] = passed[-1]["pairs"] if passed else 0
    figures["whole_run_s_at_largest"] = passed[-1]["whole_run_s"] if passed else None
    if args.runs:
        say(f"{name}: time to punch over {args.runs} runs")
        engine = make_engine(name, build_topology(project=PROJECT))
        engine.up(lambda _m: None)
        try:
            ttp = time_to_punch(engine, args.runs)
        finally:
            engine.down(lambda _m: None)
        figures["time_to_punch_ms_median"] = round(1000 * statistics.median(ttp), 1)
        figures["time_to_punch_ms_p90"] = round(1000 * percentile(ttp, 0.9), 1)
    return figures


def whole_run_goal(netns: dict) -> list[str]:
    """The table's row for the goal: the whole run at MAX_PAIRS as a share of 30 s, or why it has no figure."""
    name = f"netns: whole run (up, punch-test, down) at PAIRS={MAX_PAIRS}"
    largest = netns.get("largest_pairs_all_pass")
    if largest != MAX_PAIRS:
        return [name, f"no figure: the largest that passed is {largest} (goal <= {WHOLE_RUN_GOAL_S:g} s)"]
    whole = netns["whole_run_s_at_largest"]
    return [name, f"{whole:.1f} s = {whole / WHOLE_RUN_GOAL_S:.2f} x the goal (<= {WHOLE_RUN_GOAL_S:g} s)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.lab_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=ENGINES, action="append",
                        help="bench this engine only (repeatable; default: every engine, side by side)")
    parser.add_argument("--runs", type=int, default=20, help="punches for the time-to-punch figure (0: skip)")
    parser.add_argument("--cycles", type=int, default=3, help="lab-up + lab-down cycles to take the median of")
    parser.add_argument("--max-pairs", type=int, default=MAX_PAIRS, help=f"largest PAIRS to try ({MAX_PAIRS})")
    parser.add_argument("--docker-budget-s", type=float, default=DOCKER_BUDGET_S,
                        help=f"Docker's sizes stop past this many seconds ({DOCKER_BUDGET_S:g})")
    args = parser.parse_args(argv)
    engines = args.engine or list(ENGINES)
    results: dict[str, dict] = {}
    warm_bytecode()
    try:
        for name in engines:
            try:
                results[name] = bench_engine(name, args)
            except (SystemExit, Exception) as exc:  # noqa: BLE001  a failed engine is a figure; the next runs
                say(f"{name}: the bench failed: {exc}")
                results[name] = {"failed": str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)}
    finally:
        for name in engines:
            cli(name, "down", pairs=max(SIZES[name]), check=False)
    rows = [[f"{name}: {key}", json.dumps(value)] for name, figs in results.items()
            for key, value in figs.items() if key != "sizes"]
    if "sizes" in results.get("netns", {}):
        rows.append(whole_run_goal(results["netns"]))
    if all("up_down_s" in results.get(name, {}) for name in ("netns", "docker")):
        ratio = results["netns"]["up_down_s"] / results["docker"]["up_down_s"]
        results["netns_over_docker_up_down"] = round(ratio, 3)
        rows.append(["netns / docker, lab-up + lab-down", f"{ratio:.3f} (goal <= 0.1)"])
    print(table(rows, ["figure", "value"]))
    write_figures("lab.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
