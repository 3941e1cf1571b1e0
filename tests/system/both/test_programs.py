"""System tests: `make run` with programs no one here wrote, their path judged from the pcaps alone,
on each engine: aioice's ICE agent, and n2n's VPN with its supernode as the WAN program
(docs/recipes). The recipes are the user's files (MOUNT); under Docker the peers and the WAN host
run the n2n recipe's image (NODE_IMAGE), on netns the host's n2n."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from lab.analysis.program_verdict import judge_programs
from lab.analysis.run import read_run
from lab.engines.host_packages import ensure_packages
from lab.experiment.nat_control import set_nat
from lab.experiment.user_run import ProgramRunConfig, run_programs
from lab.paths import MOUNT_ENV, USER_IMAGE_ENV
from tests.conftest import ENGINES
from tests.helpers import ROOT
from tests.helpers.labs import lab, needs_root, say

pytestmark = [needs_root]
ICE = "python3 ice_agent.py"
N2N = {"a": "python3 n2n_peer.py", "b": "python3 n2n_peer.py", "wan": "supernode -l 7654"}
RECIPES = ROOT / "docs" / "recipes"


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    settings = {MOUNT_ENV: str(RECIPES), USER_IMAGE_ENV: str(RECIPES / "n2n")}  # Docker: both at lab-up
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    if request.param == "netns":
        ensure_packages({"edge": "n2n", "supernode": "n2n"}, say)  # netns nodes run the host's programs
    eng = lab(request.param)
    eng.up(say)
    yield eng
    eng.down(say)
    for key, value in before.items():
        os.environ.pop(key, None) if value is None else os.environ.update({key: value})


def run(engine, tmp_path, **config):
    run_dir = run_programs(engine, ProgramRunConfig(**{"a": ICE, "b": ICE, "duration_s": 25, **config}), tmp_path, say)
    record = json.loads((run_dir / "run.json").read_text())
    return run_dir, record, judge_programs(read_run(run_dir))


def test_two_ice_agents_behind_port_restricted_nats_connect_directly(engine, tmp_path):
    # No TURN offered: with a relayed candidate too, aioice may nominate a relayed pair whose check
    # completed first (the lab then says relayed, rightly).
    run_dir, record, verdict = run(engine, tmp_path, expect="direct", relay="off")
    assert all(p["ended"] == "exited" and p["exit_code"] == 0 for p in record["programs"].values()), record["programs"]
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    assert verdict.paths[0]["path"] == "direct"
    assert "10 messages echoed" in (run_dir / "a.log").read_text()
    offers = {p.name for p in (run_dir / "mailbox-1").iterdir()}
    assert offers == {"a.json", "b.json"}  # the mailbox, saved with the run


def test_behind_symmetric_nats_the_ice_agents_go_through_the_turn_relay(engine, tmp_path):
    try:
        for pair in engine.topology.pairs:
            set_nat(engine, pair.router.name, "symmetric")
        run_dir, record, verdict = run(engine, tmp_path, expect="relayed")
    finally:
        for pair in engine.topology.pairs:
            set_nat(engine, pair.router.name, "port-restricted")
    assert verdict.ok, ([(c.id, c.detail) for c in verdict.checks if not c.ok], (run_dir / "a.log").read_text())
    assert verdict.paths[0]["path"] == "relayed"


def test_n2n_edges_introduced_by_their_supernode_on_the_wan_go_direct_behind_port_restricted_nats(engine, tmp_path):
    run_dir, record, verdict = run(engine, tmp_path, **N2N, expect="direct", relay="off")
    assert verdict.ok, ([(c.id, c.detail) for c in verdict.checks if not c.ok], (run_dir / "a.log").read_text())
    assert verdict.paths[0]["path"] == "direct"
    assert record["programs"]["wan"]["ended"] == "stopped"  # the supernode, stopped once the edges were done
    assert "echoes came back through the tunnel" in (run_dir / "a.log").read_text()
    assert (run_dir / "wan.log").exists() and (run_dir / "out-a" / "rtt.json").exists()
    left = {label: (p["ended"], p["exit_code"], p.get("left")) for label, p in record["programs"].items()}
    assert all(p["left_running"] == 0 for p in record["programs"].values()), left


def test_behind_symmetric_nats_n2n_is_relayed_by_its_supernode(engine, tmp_path):
    try:
        for pair in engine.topology.pairs:
            set_nat(engine, pair.router.name, "symmetric")
        run_dir, record, verdict = run(engine, tmp_path, **N2N, expect="relayed", relay="off")
    finally:
        for pair in engine.topology.pairs:
            set_nat(engine, pair.router.name, "port-restricted")
    assert verdict.ok, ([(c.id, c.detail) for c in verdict.checks if not c.ok], (run_dir / "a.log").read_text())
    assert "relayed by wan-host" in verdict.paths[0]["reason"] and "relayed by relay" not in verdict.paths[0]["reason"]


def test_tcp_through_a_relay_on_the_wan_host_is_relayed(engine, tmp_path):
    tcp = "python3 tcp_relay.py"
    run_dir, record, verdict = run(engine, tmp_path, a=tcp, b=tcp, wan=tcp, expect="relayed", relay="off")
    assert verdict.ok, ([(c.id, c.detail) for c in verdict.checks if not c.ok], (run_dir / "a.log").read_text())
    carried = [int(n) for n in re.findall(r"relayed by wan-host (\d+) packets", verdict.paths[0]["reason"])]
    assert len(carried) == 2 and min(carried) >= 50, verdict.paths[0]["reason"]  # every line, over TCP, each way
    assert "50 lines echoed back" in (run_dir / "a.log").read_text()


def test_a_command_that_does_not_exist_fails_the_run_with_its_exit_code_through_the_cli(engine, tmp_path):
    env = {**os.environ, "NATLAB_CAPTURES": str(tmp_path), "ENGINE": engine.name,
           "NATLAB_PROJECT": engine.topology.project}
    proc = subprocess.run([sys.executable, "-m", "lab", "run", "--a", "no-such-program", "--b", "sleep 30",
                           "--duration", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "a: exited with exit code 127" in proc.stdout and "not found" in proc.stdout, proc.stdout
    assert "program b: stopped" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    report = (tmp_path / "latest" / "report.md").read_text()  # the report is written for a failed run too
    assert "## Paths" in report and (tmp_path / "latest" / "paths.png").exists()
