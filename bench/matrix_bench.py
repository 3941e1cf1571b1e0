"""`make bench` (matrix): the whole default traversal matrix, timed as a user runs it.

Figures, written to .bench/matrix.json, each beside its goal as a ratio (<= 1 meets it):
- `python -m lab matrix` of the six presets (36 cells: lab-up, punch, analysis, the matrix's files,
  lab-down), on netns (goal 30 s) and on Docker (goal 5 minutes; it runs in labs of 6 cells);
- on netns with --runs 10: cells × runs per second.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.lab_bench import cli, say, show_figures, warm_bytecode

GOALS_S = {"netns": 30.0, "docker": 300.0}
CELLS = 36


def timed_matrix(engine: str, runs: int = 1) -> dict:
    started = time.monotonic()
    proc = cli(engine, "matrix", "--runs", str(runs), check=False)
    seconds = time.monotonic() - started
    summary = next((line for line in proc.stdout.splitlines() if "cells" in line and "theory" in line), "")
    say(f"{engine}, {runs} run(s): {seconds:.1f}s, exit {proc.returncode}: {summary}")
    return {"seconds": round(seconds, 1), "exit_code": proc.returncode, "summary": summary[:200]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.matrix_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=tuple(GOALS_S), help="one engine only (default: both)")
    args = parser.parse_args(argv)
    warm_bytecode()
    results: dict = {}
    for engine in [args.engine] if args.engine else list(GOALS_S):
        figure = timed_matrix(engine)
        results[f"matrix_{engine}"] = {**figure, "goal_s": GOALS_S[engine],
                                       "ratio": round(figure["seconds"] / GOALS_S[engine], 3)}
    repeated = timed_matrix("netns", runs=10)
    results["matrix_netns_runs_10"] = {**repeated,
                                       "cell_runs_per_s": round(CELLS * 10 / repeated["seconds"], 2)}
    show_figures("matrix.json", results, "both engines" if not args.engine else args.engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
