"""PAIRS=2 under Docker: a lab from a generated compose file (not the committed one) punches every pair."""

from __future__ import annotations

from lab.analysis.verdict import analyse_run
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from tests.helpers.labs import lab, needs_root, say

pytestmark = [needs_root]


def test_two_pairs_under_another_project_name(tmp_path):
    eng = lab("docker", project="nltest-dkr", pairs=2)
    try:
        eng.up(say)
        verdict = analyse_run(run_punch_test(eng, PunchTestConfig(messages=3), tmp_path, say))
        assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
        assert all(c.detail.startswith("2/2 pairs pass") for c in verdict.checks if c.id != "0")  # 0: the captures
    finally:
        eng.down(say)
    assert eng._lab_containers() == []
