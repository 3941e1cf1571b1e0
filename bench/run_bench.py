"""`make bench` (make run): what the lab costs a user's program, on both engines, and a 100-pair run.

Figures, written to .bench/run.json (the issue sets no goal: the figures are the cost):
- per engine, PAIRS=1, `python -m lab run` of the smallest recipe (docs/recipes/udp_punch.py: one
  STUN request, the mailbox, three seconds of UDP), --runs times, medians:
  - to start: from the command's start to the first program's (mailboxes emptied, NAT state
    flushed, captures started, credentials minted), and the spread of the programs' starts;
  - to the verdict: from the last program's exit to the verdict printed (captures stopped and
    collected, pcaps read, paths judged);
  - to the report: from the last program's exit to the command's end (report.md, paths.png,
    the ladder and merged.pcapng written);
- on netns, a `make run` of the same program in --max-pairs pairs at once (100): how many pairs
  went direct, the whole command's seconds, and the same three figures.
Every lab is taken down at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench.lab_bench import BENCH_CAPTURES, cli, cli_env, say, show_figures, warm_bytecode
from lab.paths import MOUNT_ENV, PROJECT_DIR

RECIPES = PROJECT_DIR / "docs" / "recipes"
PROGRAM = "python3 udp_punch.py"


def timed_run(engine: str, pairs: int) -> dict:
    """One `python -m lab run` of the recipe in every pair, timed from outside and from its run.json."""
    argv = [sys.executable, "-m", "lab", "run", "--a", PROGRAM, "--b", PROGRAM, "--duration", "60",
            "--expect", "direct", "--relay", "off"]
    started = time.time()
    proc = subprocess.Popen(argv, cwd=PROJECT_DIR, env=cli_env(engine, pairs, **{MOUNT_ENV: str(RECIPES)}),
                            stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    verdict_at = None
    for line in proc.stdout:
        if verdict_at is None and line.startswith("verdict for run"):
            verdict_at = time.time()
    code, ended = proc.wait(), time.time()
    run_dir = (BENCH_CAPTURES / "latest").resolve()
    programs = json.loads((run_dir / "run.json").read_text())["programs"].values()
    paths = json.loads((run_dir / "verdict.json").read_text()).get("paths", [])
    starts = [p["started_at"] for p in programs]
    last_exit = max(p["started_at"] + p["seconds"] for p in programs)
    return {"exit_code": code, "direct": sum(p["path"] == "direct" for p in paths), "pairs": pairs,
            "whole_s": ended - started, "to_start_s": min(starts) - started, "start_spread_s": max(starts) - min(starts),
            "to_verdict_s": (verdict_at or ended) - last_exit, "to_report_s": ended - last_exit}


def medians(runs: list[dict]) -> dict:
    keys = ("to_start_s", "start_spread_s", "to_verdict_s", "to_report_s", "whole_s")
    return {"runs": len(runs), "passed": sum(r["exit_code"] == 0 for r in runs),
            **{key: round(statistics.median(r[key] for r in runs), 3) for key in keys}}


def overhead(engine: str, runs: int) -> dict:
    cli(engine, "up", **{MOUNT_ENV: str(RECIPES)})  # Docker mounts the recipes at lab-up
    try:
        results = [timed_run(engine, 1) for _ in range(runs)]
    finally:
        cli(engine, "down", check=False)
    figure = medians(results)
    say(f"{engine}: {figure}")
    return figure


def many_pairs(pairs: int) -> dict:
    cli("netns", "up", pairs=pairs)
    try:
        result = timed_run("netns", pairs)
    finally:
        cli("netns", "down", pairs=pairs, check=False)
    figure = {"direct": f"{result['direct']}/{pairs}", "exit_code": result["exit_code"],
              **{k: round(v, 3) for k, v in result.items() if k.endswith("_s")}}
    say(f"netns, {pairs} pairs: {figure}")
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("docker", "netns"), help="one engine only (default: both)")
    parser.add_argument("--runs", type=int, default=5, help="runs per engine for the overhead")
    parser.add_argument("--max-pairs", type=int, default=100, help="pairs of the netns run of many")
    args = parser.parse_args(argv)
    warm_bytecode()
    results: dict = {}
    for engine in [args.engine] if args.engine else ["netns", "docker"]:
        results[f"overhead_{engine}"] = overhead(engine, args.runs)
    results[f"make_run_{args.max_pairs}_pairs_netns"] = many_pairs(args.max_pairs)
    show_figures("run.json", results, "both engines" if not args.engine else args.engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
