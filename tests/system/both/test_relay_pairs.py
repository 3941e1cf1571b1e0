"""System test: three punch pairs with mixed NATs in one lab, each pair's path read from the pcaps, on
each engine (a lab of its own: three pairs)."""

from __future__ import annotations

import json

import pytest

from lab.analysis.verdict import analyse_run
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from tests.conftest import ENGINES
from tests.helpers.labs import lab, needs_root, say

pytestmark = [needs_root]
NATS = {"a2": "symmetric", "b2": "symmetric", "a3": "symmetric", "b3": "full-cone"}  # pair 1 stays port-restricted


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    eng = lab(request.param, pairs=3)
    eng.up(say)
    yield eng
    eng.down(say)


def test_three_pairs_with_mixed_nats_each_take_the_path_their_nats_allow(engine, tmp_path):
    for label, setting in NATS.items():
        set_nat(engine, f"router-{label}", setting)
    run_dir = run_punch_test(engine, PunchTestConfig.for_pairs(3, messages=5), tmp_path, say)
    verdict = analyse_run(run_dir)
    assert verdict.ok, [c for c in verdict.checks if not c.ok]
    assert [(p["pair"], p["path"], p["expected"]) for p in verdict.paths] == [
        (1, "direct", "direct"), (2, "relayed", "relayed"), (3, "direct", "direct")]
    routes = {label: peer["route"] for label, peer in json.loads((run_dir / "run.json").read_text())["peers"].items()}
    assert routes == {"a": "direct", "b": "direct", "a2": "relayed", "b2": "relayed", "a3": "direct", "b3": "direct"}
