"""System tests: every NAT behaviour on a real router, judged by three classifiers.

The lab's own RFC 5780 classifier, coturn's turnutils_natdiscovery and stun-client's `stun` run
inside the peer's network namespace against the broker, on each engine (conftest's `engine`):
under Docker the outside classifiers come with the node image; on netns a node runs the host's
programs, so they must be on the host (Debian's coturn and stun-client: `make netns-test`
installs them). Needs root.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from lab.analysis.verdict import analyse_run
from lab.experiment.classification import classify_all, own_classifier
from lab.experiment.nat_control import live_nat, set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.report.terminal import classification_table
from nat.behaviour import PRESETS, UnknownPreset
from tests.helpers.labs import needs_root, say

pytestmark = [needs_root]

OUTSIDE_CLASSIFIERS = {"turnutils_natdiscovery": "coturn", "stun": "stun-client"}

TIMEOUT = 6  # short mapping timeouts keep the lifetime measurement quick; ±1 s is still the bar
SETTINGS = [f"{name},timeout={TIMEOUT}" for name in PRESETS] + [
    f"full-cone,hairpin=on,timeout={TIMEOUT}",
    f"symmetric,hairpin=on,timeout={TIMEOUT}",
]


def test_every_preset_is_what_three_classifiers_say_it_is(engine):
    if engine.name == "netns":  # the node runs the host's programs
        missing = [f"{tool} ({pkg})" for tool, pkg in OUTSIDE_CLASSIFIERS.items() if not shutil.which(tool)]
        if missing:
            pytest.skip(f"not on the host: {', '.join(missing)}; `make netns-test` installs them")
    before = live_nat(engine, "router-a")["nat"]
    rows = classify_all(engine, engine.topology.pair("a"), SETTINGS, say, lifetime_max=TIMEOUT + 3)
    table = classification_table(rows)
    print(table, file=sys.stderr)
    assert [r.disagreements for r in rows] == [[] for _ in rows], table
    assert live_nat(engine, "router-a")["nat"] == before  # put back afterwards


def test_nat_set_takes_effect_at_once(engine):
    pair = engine.topology.pair("b")
    try:
        set_nat(engine, pair.router.name, "symmetric")
        assert own_classifier(engine, pair)["mapping"] == "apdm"
        set_nat(engine, pair.router.name, "full-cone")
        found = own_classifier(engine, pair)
        assert (found["mapping"], found["filtering"]) == ("eim", "eif")
    finally:
        set_nat(engine, pair.router.name, "port-restricted")


def test_a_bad_setting_changes_nothing(engine):
    before = live_nat(engine, "router-a")["nat"]
    with pytest.raises(UnknownPreset, match="valid presets"):
        set_nat(engine, "router-a", "full-moon")
    with pytest.raises(UnknownPreset, match="cannot have ports=preserve"):
        set_nat(engine, "router-a", "mapping=apdm,ports=preserve")
    assert live_nat(engine, "router-a")["nat"] == before


@pytest.mark.parametrize(
    "nat_a, nat_b, punches",
    [
        ("full-cone", "restricted-cone", True),
        ("symmetric", "full-cone", True),  # the cone side answers where it hears the partner from
        ("symmetric", "port-restricted", False),  # no prediction: the hole never lines up
    ],
)
def test_punching_across_nat_pairs(engine, tmp_path, nat_a, nat_b, punches):
    try:
        set_nat(engine, "router-a", nat_a)
        set_nat(engine, "router-b", nat_b)
        run_dir = run_punch_test(engine, PunchTestConfig(messages=3, timeout_s=6), tmp_path, say)
    finally:
        set_nat(engine, "router-a", "port-restricted")
        set_nat(engine, "router-b", "port-restricted")
    verdict = analyse_run(run_dir)
    direct = next(c for c in verdict.checks if c.id == "3")
    assert direct.ok is punches, direct.detail
    controls = [c for c in verdict.checks if c.id in ("5a", "5b")]
    assert all(c.ok for c in controls), [(c.id, c.detail) for c in controls]


def test_port_prediction_punches_through_a_sequential_symmetric_nat(engine, tmp_path):
    """a's NAT maps per destination, ports in order: a announces the ports its next flows will get, b probes
    them, and the path is direct, at one of them, as the captures show (the random symmetric NAT above, whose
    ports cannot be predicted, stays closed)."""
    try:
        set_nat(engine, "router-a", "symmetric-sequential")
        run_dir = run_punch_test(engine, PunchTestConfig(messages=3, timeout_s=8), tmp_path, say)
    finally:
        set_nat(engine, "router-a", "port-restricted")
    record = json.loads((run_dir / "run.json").read_text())
    a, b = record["peers"]["a"], record["peers"]["b"]
    assert a["prediction"]["count"] > 0 and b["prediction"]["count"] == 0, (a["prediction"], b["prediction"])
    assert a["route"] == b["route"] == "direct" and b["opened_by_prediction"], (a, b)
    verdict = analyse_run(run_dir)
    path = next(c for c in verdict.checks if c.id == "3")
    assert path.ok and "port prediction" in path.detail, path.detail
    assert any(line.startswith("port prediction: a announced ports") for line in path.evidence), path.evidence
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
