"""System test: a lab from a topology file (TOPOLOGY=<file>.toml) on each engine, holding two shapes at once:
a standard pair and a same-lan pair, each punched and judged on its own path."""

from __future__ import annotations

import json

import pytest

from lab.engines.registry import make_engine
from lab.topology_file import load_topology_file
from tests.conftest import ENGINES
from tests.helpers.labs import needs_root, punch_test_cli, say

pytestmark = [needs_root]
MIXED = """\
[[pair]]
nat_a = "full-cone"

[[pair]]
shape = "same-lan"
"""


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("topology") / "mixed.toml"
    path.write_text(MIXED)
    return path


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, lab_file):
    eng = make_engine(request.param, load_topology_file(lab_file, project="nltest-file"))
    eng.up(say)
    yield eng
    eng.down(say)


def test_make_punch_test_on_a_lab_of_two_shapes_judges_each_pair_by_its_own(engine, lab_file, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine, {"TOPOLOGY": str(lab_file), "PAIRS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2/2 pairs pass" in proc.stdout
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert [(p["path"], p["expected"]) for p in verdict["paths"]] == [("direct", "direct"), ("local", "local")]
    record = json.loads((run_dir / "run.json").read_text())
    assert {n["name"] for n in record["topology"]["nodes"] if n["role"] == "router"} == {"router-a", "router-b",
                                                                                        "router-a2"}
