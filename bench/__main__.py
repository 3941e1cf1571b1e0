"""`make bench`: every bench in turn, each in a process of its own. One that fails is a figure
(failed, with its last words) and the next one runs: the bench never stops half way. Exits 1 if
any failed, after all have run.

    python -m bench [--engine netns|docker] [--runs N] [--max-pairs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from lab.engines.registry import ENGINES
from lab.paths import PROJECT_DIR
from lab.report.terminal import table
from lab.topology import MAX_PAIRS

# Each bench's module, and whether it takes --engine (lab_bench also --runs and --max-pairs).
BENCHES = (("lab", "bench.lab_bench", True), ("links", "bench.link_bench", False),
           ("relay", "bench.relay_bench", False), ("run", "bench.run_bench", True),
           ("matrix", "bench.matrix_bench", True))
LAST_WORDS = 3  # lines of a failed bench's output kept in the summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=ENGINES, help="bench this engine only (default: both)")
    parser.add_argument("--runs", type=int, default=20, help="lab_bench: punches for the time to punch")
    parser.add_argument("--max-pairs", type=int, default=MAX_PAIRS,
                        help=f"lab_bench: largest PAIRS to try ({MAX_PAIRS}: all the lab holds, its goal's size)")
    args = parser.parse_args(argv)
    rows, failed = [], 0
    for name, module, by_engine in BENCHES:
        extra = (["--engine", args.engine] if by_engine and args.engine else [])
        if module == "bench.lab_bench":
            extra += ["--runs", str(args.runs), "--max-pairs", str(args.max_pairs)]
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", module, *extra], cwd=PROJECT_DIR,
                              stdout=None, stderr=subprocess.PIPE, text=True)
        sys.stderr.write(proc.stderr)
        took = f"{time.monotonic() - start:.0f}s"
        if proc.returncode == 0:
            rows.append([name, "done", took, ""])
        else:
            failed += 1
            words = [line for line in proc.stderr.splitlines() if line.strip()][-LAST_WORDS:]
            rows.append([name, f"FAILED (exit {proc.returncode})", took, " | ".join(words)[:400]])
    print(table(rows, ["bench", "result", "took", "why"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
