"""System test: a real punch test leaves its report beside the pcaps, and the merged capture is whole.

Needs root and the lab (the module-scoped `engine` fixture in conftest.py, once per engine).
"""

from __future__ import annotations

import shutil

import pytest
from scapy.utils import PcapNgReader

from tests.helpers.labs import needs_root, punch_test_cli
from tests.helpers.pcaps import frames_per_vantage, tshark_interface_names

pytestmark = [needs_root]


def test_punch_test_writes_report_ladder_and_merged_capture(engine, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("report.md", "ladder.png", "merged.pcapng"):
        assert (run_dir / name).stat().st_size > 0, name
        assert str(run_dir / name) in proc.stdout, f"punch-test does not say where {name} is"
    assert "**all checks passed**" in (run_dir / "report.md").read_text()
    assert (run_dir / "ladder.png").read_bytes().startswith(b"\x89PNG")

    parts = frames_per_vantage(run_dir)
    busy = {vantage: n for vantage, n in parts.items() if vantage != "wan-host-wan"}
    # the WAN host is captured too, with no business in a punch test (it may hear broadcasts)
    assert "wan-host-wan" in parts and len(busy) == 6 and all(busy.values()), parts  # the relay's too: allocated
    with PcapNgReader(str(run_dir / "merged.pcapng")) as reader:
        assert len(list(reader)) == sum(parts.values())
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed: the merged capture was checked with scapy only")
    names = tshark_interface_names(run_dir / "merged.pcapng")
    assert len(names) == sum(parts.values())
    assert {name: names.count(name) for name in parts} == parts
