"""System test: a real punch test leaves its report beside the pcaps, and the merged capture is whole.

Needs root and the lab (the module-scoped `engine` fixture in conftest.py). Marker: docker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from scapy.utils import PcapNgReader, rdpcap

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]


def test_punch_test_writes_report_ladder_and_merged_capture(engine, tmp_path):
    env = {**os.environ, "NATLAB_CAPTURES": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "lab", "punch-test"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = (tmp_path / "latest").resolve()
    for name in ("report.md", "ladder.png", "merged.pcapng"):
        assert (run_dir / name).stat().st_size > 0, name
        assert str(run_dir / name) in proc.stdout, f"punch-test does not say where {name} is"
    assert "**all checks passed**" in (run_dir / "report.md").read_text()
    assert (run_dir / "ladder.png").read_bytes().startswith(b"\x89PNG")

    parts = {p.stem: len(rdpcap(str(p))) for p in run_dir.glob("*.pcap")}
    assert len(parts) == 5 and all(parts.values()), parts
    with PcapNgReader(str(run_dir / "merged.pcapng")) as reader:
        assert len(list(reader)) == sum(parts.values())
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed: the merged capture was checked with scapy only")
    out = subprocess.run(["tshark", "-r", str(run_dir / "merged.pcapng"), "-T", "fields", "-e", "frame.interface_name"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    names = out.stdout.split()
    assert len(names) == sum(parts.values())
    assert {name: names.count(name) for name in parts} == parts
