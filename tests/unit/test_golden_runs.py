"""Real runs kept as they came from the lab (tests/data/golden: one pair and two pairs, netns, all
checks passed): re-judged and re-reported from their pcaps, they must give the very same files.

A change to the analysis or the report that alters a byte of verdict.json, report.md or
merged.pcapng shows here; if it is meant, regenerate the golden files and say why.
"""

from __future__ import annotations

import shutil

import pytest

from lab.cli import main
from tests.helpers import DATA

GOLDEN = DATA / "golden"
WRITTEN = ("verdict.json", "report.md", "merged.pcapng")  # what `verdict` and `report` (re)write


@pytest.mark.parametrize("case", ["one-pair", "two-pairs"])
def test_a_real_run_is_judged_and_reported_byte_for_byte_as_before(case, tmp_path, capsys):
    run = tmp_path / case
    shutil.copytree(GOLDEN / case, run, ignore=shutil.ignore_patterns(*WRITTEN))
    assert main(["verdict", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    assert "all checks passed" in capsys.readouterr().out
    for name in WRITTEN:
        assert (run / name).read_bytes() == (GOLDEN / case / name).read_bytes(), f"{case}/{name} differs"
    assert (run / "ladder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_leaves_the_verdict_as_it_was(tmp_path):
    """`report` computes the verdict for its page; verdict.json is the `verdict` command's to write."""
    run = tmp_path / "run"
    shutil.copytree(GOLDEN / "one-pair", run)
    (run / "verdict.json").write_text("kept\n")
    assert main(["report", str(run)]) == 0
    assert (run / "verdict.json").read_text() == "kept\n"
