"""System tests: `make matrix` on each engine (Docker in its batches), its files and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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
