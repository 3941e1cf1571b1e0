"""`make bench`: how long the lab takes to stand up and to punch, measured on this machine.

Figures (printed as a table and written to .bench/lab.json):
- cold lab-up: node image rebuilt from the cached base image, no containers
- warm lab-up: image present, no containers
- punch-test wall time: the whole captured scenario with its verdict (median of 3)
- time to punch: from the introduction to the first packet heard from the partner, both peers
  probing at once, over --runs runs on fresh NAT state (median and 90th percentile)
Timing belongs here, never in the tests: machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lab.cli import PROJECT_DIR
from lab.compose_file import NODE_IMAGE
from lab.docker_engine import DockerEngine
from lab.report import table
from lab.scenario import PunchTestConfig, punch
from lab.topology import build_topology


def quiet(_message: str) -> None:
    pass


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "lab", *args], cwd=PROJECT_DIR, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def time_to_punch(engine: DockerEngine, runs: int) -> list[float]:
    """Per run: seconds until both peers had heard each other (the slower of the two)."""
    broker = f"{engine.topology.broker.address}:{engine.topology.broker_port}"
    config = PunchTestConfig(messages=1, late_peer="", punch_delay_s=0.0, timeout_s=10)
    out = []
    for i in range(runs):
        for pair in engine.topology.pairs:
            engine.exec(pair.router.name, ["conntrack", "-F"])
        results = punch(engine, config, f"bench-{time.time_ns()}-{i}", broker)
        if not all(r["ok"] for r in results.values()):
            raise SystemExit(f"run {i} did not punch: {results}")
        out.append(max(r["time_to_punch_s"] for r in results.values()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.lab_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="punches for the time-to-punch figure")
    args = parser.parse_args(argv)
    engine = DockerEngine(build_topology(), PROJECT_DIR)
    print("bench: taking the lab down and removing the node image (the base image stays)", file=sys.stderr)
    cli("down")
    subprocess.run(["docker", "image", "rm", "-f", NODE_IMAGE], capture_output=True)
    cold = timed(lambda: cli("up"))
    cli("down")
    warm = timed(lambda: cli("up"))
    punch_walls = [timed(lambda: cli("punch-test")) for _ in range(3)]
    ttp = time_to_punch(engine, args.runs)
    figures = {
        "cold_lab_up_s": round(cold, 2),
        "warm_lab_up_s": round(warm, 2),
        "punch_test_wall_s_median_of_3": round(statistics.median(punch_walls), 2),
        "time_to_punch_ms_median": round(1000 * statistics.median(ttp), 1),
        "time_to_punch_ms_p90": round(1000 * percentile(ttp, 0.9), 1),
        "time_to_punch_runs": args.runs,
        "warm_over_cold_ratio": round(warm / cold, 3),
    }
    rows = [[k, str(v)] for k, v in figures.items()]
    print(table(rows, ["figure", "value"]))
    out = PROJECT_DIR / ".bench" / "lab.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}, indent=2) + "\n")
    print(f"\nwritten to {out}; the lab is left up", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
