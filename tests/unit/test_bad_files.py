"""`verdict`, `report` and `show` on runs that are not whole or not natlab's: one line naming the
file and what is wrong, exit 2, no traceback, and nothing in the run directory written."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, ROOT

GOLDEN = DATA / "golden" / "one-pair"


def spoil_record(run: Path, text: str) -> None:
    (run / "run.json").write_text(text)


def record_with(run: Path, **changes) -> None:
    record = json.loads((run / "run.json").read_text())
    record.update(changes)
    (run / "run.json").write_text(json.dumps(record))


FAULTS = {
    "no run.json": (lambda run: (run / "run.json").unlink(), "no run at"),
    "empty run.json": (lambda run: spoil_record(run, ""), "run.json: not JSON"),
    "run.json not JSON": (lambda run: spoil_record(run, "{broken"), "run.json: not JSON"),
    "run.json a list": (lambda run: spoil_record(run, "[1, 2]"), "not a natlab run record (a JSON list"),
    "run.json of another program": (lambda run: spoil_record(run, '{"name": "x"}'),
                                    "not a natlab run record (no run_id, config, topology)"),
    "a newer format": (lambda run: record_with(run, format=99), "a run of format 99, written by a newer natlab"),
    "a topology that does not read": (lambda run: record_with(run, topology={"project": "x"}),
                                      "its topology does not read"),
    "a pcap that is not one": (lambda run: (run / "router-a-wan.pcap").write_bytes(b"GIF89a" + bytes(40)),
                               "router-a-wan.pcap: not a pcap file"),
    "an empty pcap": (lambda run: (run / "router-a-wan.pcap").write_bytes(b""), "router-a-wan.pcap: empty"),
    "a pcap cut mid-record": (lambda run: (run / "router-a-wan.pcap").write_bytes(
        (run / "router-a-wan.pcap").read_bytes()[:-7]), "router-a-wan.pcap: cut short"),
    "no pcaps": (lambda run: [p.unlink() for p in run.glob("*.pcap")], "no pcaps"),
}


def digest(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir())}


@pytest.mark.parametrize("command", ["verdict", "report", "show"])
@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_bad_run_is_refused_in_one_line_and_left_as_it_was(tmp_path, command, fault):
    run = tmp_path / "run"
    shutil.copytree(GOLDEN, run)
    spoil, says = FAULTS[fault]
    spoil(run)
    before = digest(run)
    proc = subprocess.run([sys.executable, "-m", "lab", command, str(run)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("natlab: error: ") and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert digest(run) == before
