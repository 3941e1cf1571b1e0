"""The verdict of a `make run` of the user's programs: the path, from the pcaps alone; no private
address on a WAN; and how each program ended (a program that failed is not hidden by a good path,
nor the reverse).

1  path          each pair's path (lab.analysis.program_paths) is the one EXPECT asks for
                 (`any`: direct or relayed, but some path)
2  no-leak       no private address on any public capture point
3  programs      every program exited 0, or ran until the duration and was stopped then
and first, as for every run, check 0: the captures are complete (lab.analysis.capture_check).
"""

from __future__ import annotations

from lab.analysis.capture_check import with_capture_check
from lab.analysis.program_paths import NONE, program_paths
from lab.analysis.run import LoadedRun
from lab.analysis.verdict import Check, Verdict, wan_leaks

PASS_ON_ABSENCE = ("2",)  # no private address on a WAN: inconclusive when a capture is incomplete


def judge_programs(run: LoadedRun) -> Verdict:
    config, view = run.record["config"], run.view
    expect = config.get("expect", "any")
    checks, rows = [], []
    problems, evidence, failed = [], [], []
    for path in program_paths(view):
        name = f"pair {path.number}"
        firsts = ", ".join(f"{label} at +{t:.3f}s" if t is not None else f"{label} never"
                           for label, t in path.first_direct.items())
        upgrade = f"; upgraded from relayed to direct at +{path.upgraded_at:.3f}s" if path.upgraded_at is not None else ""
        evidence.append(f"{name}: {path.path}; first direct datagram: {firsts}{upgrade}; {path.reason}; "
                        f"bytes from the later first direct datagram on: {path.after_direct}")
        as_expected = path.path != NONE and expect in ("any", path.path)
        opened = path.opened(path.path) if path.path != NONE else None
        rows.append({"pair": path.number, "path": path.path, "expected": expect, "as_expected": as_expected,
                     "reason": path.reason, "first_direct": path.first_direct, "upgraded_at": path.upgraded_at,
                     "opened_at": None if opened is None else round(opened, 6),
                     "per_second": path.timeline()})
        if not as_expected:
            failed.append(path.number)
            problems.append(f"{name}: {path.path}" + ("" if expect == "any" else f", not {expect}")
                            + f" ({path.reason})")
    detail = "; ".join(problems) or ", ".join(f"pair {r['pair']}: {r['path']}" for r in rows) + \
        ("" if expect == "any" else f", as expected ({expect})")
    checks.append(Check("1", f"path of the programs' traffic (expect {expect})", not problems, detail, evidence,
                        len(rows), failed))
    leaks = wan_leaks(view)
    checks.append(Check("2", "no private address on a WAN", not leaks,
                        "; ".join(leaks) or "private addresses only on the LANs"))
    peers = {side.label: side for pp in view.topology.punch_pairs for side in pp.sides}
    ended, bad, bad_pairs = [], [], []
    for label, result in sorted(run.record.get("programs", {}).items()):
        how = result.get("ended")
        code = result.get("exit_code")
        ended.append(f"{label}: {how}" + (f" with {code}" if how == "exited" else "")
                     + f" after {result.get('seconds')}s")
        if how == "not started" or (how == "exited" and code != 0):
            head = " | ".join(result.get("head") or [])[:300]
            bad.append(f"{label}: {how}" + (f" with exit code {code}" if how == "exited" else "") + f": {head}")
            if label in peers:
                bad_pairs.append(peers[label].number)
    checks.append(Check("3", "the programs ended well", not bad, "; ".join(bad) or "; ".join(ended), ended,
                        failed_pairs=sorted(set(bad_pairs))))
    return with_capture_check(run, Verdict(run.record["run_id"], checks, rows), PASS_ON_ABSENCE)
