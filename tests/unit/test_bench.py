"""The bench's bookkeeping: a size that fails is a figure, with why; the time budget stops a series."""

from __future__ import annotations

import subprocess

import bench.lab_bench as lab_bench


def fake_cli(fail: dict[str, str]):
    """`python -m lab` that fails the commands named in `fail` with that output."""
    calls = []

    def cli(engine, *args, pairs=1, check=True, **env):
        calls.append((args[0], pairs))
        said = fail.get(args[0])
        return subprocess.CompletedProcess(args, 1 if said else 0, "", said or "")

    return cli, calls


def test_a_size_whose_lab_up_fails_is_a_figure_with_why_and_the_lab_is_taken_down(monkeypatch):
    cli, calls = fake_cli({"up": "[natlab] creating\nnatlab: error: PAIRS must be between 1 and 248, not 250"})
    monkeypatch.setattr(lab_bench, "cli", cli)
    rows = lab_bench.largest_punched("netns", [250, 300])
    assert rows == [{"pairs": 250, "all_pass": False, "up_s": rows[0]["up_s"], "down_s": rows[0]["down_s"],
                     "failed": "lab-up: natlab: error: PAIRS must be between 1 and 248, not 250"}]
    assert calls == [("up", 250), ("down", 250)]  # stopped at the first failure, down whatever happened


def test_a_failed_verdict_says_so_and_past_the_budget_the_sizes_left_are_skipped(monkeypatch):
    cli, _ = fake_cli({"punch-test": "verdict for run x: 2 check(s) FAILED\nreport: ..."})
    monkeypatch.setattr(lab_bench, "cli", cli)
    (row,) = lab_bench.largest_punched("docker", [20])
    assert row["failed"] == "punch-test: verdict for run x: 2 check(s) FAILED" and "whole_run_s" not in row
    cli, calls = fake_cli({})
    monkeypatch.setattr(lab_bench, "cli", cli)
    rows = lab_bench.largest_punched("docker", [1, 5], budget_s=-1)
    assert [r.get("skipped") for r in rows] == ["past the -1s time budget"] * 2 and calls == []


def test_the_whole_run_at_the_largest_size_is_shown_beside_its_goal_or_why_it_has_no_figure():
    at_max = {"largest_pairs_all_pass": lab_bench.MAX_PAIRS, "whole_run_s_at_largest": 45.0}
    assert lab_bench.whole_run_goal(at_max)[1] == "45.0 s = 1.50 x the goal (<= 30 s)"
    short = {"largest_pairs_all_pass": 100, "whole_run_s_at_largest": 20.0}
    assert lab_bench.whole_run_goal(short)[1] == "no figure: the largest that passed is 100 (goal <= 30 s)"


def test_the_cgnat_figure_is_the_shape_s_up_and_down_or_why_its_lab_up_failed(monkeypatch):
    seen = []

    def cli(engine, *args, pairs=1, check=True, **env):
        seen.append((args[0], pairs, env.get("TOPOLOGY")))
        failed = args[0] == "up" and fail
        return subprocess.CompletedProcess(args, 1 if failed else 0, "", "natlab: error: no room" if failed else "")

    monkeypatch.setattr(lab_bench, "cli", cli)
    fail = False
    figures = lab_bench.cgnat_up_down()
    assert set(figures) == {"up_s", "down_s", "up_down_s"}
    assert {s for s in seen} == {("down", 50, "cgnat"), ("up", 50, "cgnat")}
    fail = True
    seen.clear()
    assert lab_bench.cgnat_up_down() == {"failed": "natlab: error: no room"}
    assert seen[-1][0] == "down"  # down whatever happened
