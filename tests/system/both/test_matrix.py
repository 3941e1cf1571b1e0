"""System tests: `make matrix` on each engine (Docker in its batches), its files and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lab.paths import MOUNT_ENV
from tests.conftest import ENGINES
from tests.helpers import ROOT
from tests.helpers.labs import needs_root
from tests.helpers.matrices import THREE

pytestmark = [needs_root]


@pytest.mark.parametrize("engine", ENGINES)
def test_make_matrix_writes_its_grid_and_exits_zero_when_every_cell_agrees(engine, tmp_path):
    env = {**os.environ, "ENGINE": engine, "NATLAB_CAPTURES": str(tmp_path), "NATLAB_PROJECT": "nltest"}
    proc = subprocess.run([sys.executable, "-m", "lab", "matrix", "--nats", ",".join(THREE[1:]), "--relay", "auto"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "all 4 cells as theory expects (relay auto)" in proc.stdout and "a: symmetric" in proc.stdout
    latest = tmp_path / "latest"
    data = json.loads((latest / "matrix.json").read_text())
    assert data["agree"] and len(data["cells"]) == 4 and {c["observed"] for c in data["cells"]} == {"direct", "relayed"}
    assert (latest / "matrix.png").read_bytes()[:4] == b"\x89PNG" and "<table" in (latest / "matrix.html").read_text()
    assert "| a: symmetric |" in (latest / "matrix.md").read_text()


@pytest.mark.parametrize("engine", ENGINES)
def test_make_matrix_of_your_programs_shows_where_they_fall_short_of_what_the_nats_allow(engine, tmp_path):
    """docs/recipes/udp_punch.py only listens to the partner's STUN address: a peer behind a full cone hears
    from a symmetric NAT's fresh port and ignores it, so the direct path theory opens there is missed."""
    env = {**os.environ, "ENGINE": engine, "NATLAB_CAPTURES": str(tmp_path), "NATLAB_PROJECT": "nltest",
           MOUNT_ENV: str(ROOT / "docs" / "recipes"), "A": "python3 udp_punch.py", "B": "python3 udp_punch.py"}
    proc = subprocess.run([sys.executable, "-m", "lab", "matrix", "--nats", "full-cone,symmetric", "--relay", "off"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]  # two cells fall short
    data = json.loads((tmp_path / "latest" / "matrix.json").read_text())
    cells = {(c["nat_a"], c["nat_b"]): c for c in data["cells"]}
    assert {k: (c["observed"], c["expected"]) for k, c in cells.items()} == {
        ("full-cone", "full-cone"): ("direct", "direct"), ("full-cone", "symmetric"): ("failed", "direct"),
        ("symmetric", "full-cone"): ("failed", "direct"), ("symmetric", "symmetric"): ("failed", "failed")}
    assert [k for k, c in cells.items() if not c["agree"]] == [("full-cone", "symmetric"), ("symmetric", "full-cone")]
    assert data["programs"]["a"] == "python3 udp_punch.py" and data["seconds_since"] == "the programs' start"
    assert cells[("full-cone", "full-cone")]["seconds"] > 0
    ended = cells[("full-cone", "full-cone")]["runs"][0]["programs"]
    assert len(ended) == 2 and all("exited with 0" in line and "heard the partner" in line for line in ended)
    assert "your programs: A='python3 udp_punch.py'" in proc.stdout
