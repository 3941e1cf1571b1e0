"""The traversal matrix: per-pair settings in the topology, cells read off built runs, and its grid
as text, Markdown and HTML."""

from __future__ import annotations

import re

import pytest

from lab.analysis.matrix import Matrix, observe
from lab.analysis.run import read_run
from lab.errors import LabError
from lab.experiment.matrix_run import DOCKER_BATCH, MatrixConfig, batches
from lab.report.matrix_html import render_html
from lab.report.matrix_text import markdown_grid, terminal_grid
from lab.topology import PairSettings, build_topology
from nat.behaviour import UnknownPreset
from tests.helpers.matrices import sample_matrix
from tests.helpers.pcap_factory import Faults, build_run, write_record


def test_each_pair_of_a_lab_can_have_its_own_nats_and_links():
    topo = build_topology(pair_settings=(PairSettings("full-cone", "symmetric"),
                                         PairSettings("port-restricted", "full-cone", link_b="mobile-3g")))
    routers = {r.name: (r.nat, r.link) for r in (p.router for p in topo.pairs)}
    assert routers == {"router-a": ("full-cone", "lan"), "router-b": ("symmetric", "lan"),
                       "router-a2": ("port-restricted", "lan"), "router-b2": ("full-cone", "mobile-3g")}
    assert build_topology(nat_a="symmetric", pairs=2) == build_topology(
        pair_settings=(PairSettings("symmetric"),) * 2)  # NAT_A with PAIRS: the shorthand for all the same
    with pytest.raises(UnknownPreset):
        build_topology(pair_settings=(PairSettings("cone-ish"),))


def test_the_matrix_is_every_ordered_pair_of_nats_for_each_link_and_docker_runs_it_in_batches():
    config = MatrixConfig(nats=("full-cone", "symmetric"), links=("lan", "mobile-3g"))
    assert [(c.nat_a, c.nat_b, c.link_a) for c in config.cells] == [
        ("full-cone", "full-cone", "lan"), ("full-cone", "symmetric", "lan"), ("symmetric", "full-cone", "lan"),
        ("symmetric", "symmetric", "lan"), ("full-cone", "full-cone", "mobile-3g"),
        ("full-cone", "symmetric", "mobile-3g"), ("symmetric", "full-cone", "mobile-3g"),
        ("symmetric", "symmetric", "mobile-3g")]
    assert all(c.link_a == c.link_b for c in config.cells)
    assert len(MatrixConfig().cells) == 36
    assert [len(b) for b in batches(MatrixConfig().cells, "docker")] == [DOCKER_BATCH] * (36 // DOCKER_BATCH)
    assert [len(b) for b in batches(MatrixConfig().cells, "netns")] == [36]
    with pytest.raises(LabError, match="RUNS must be 1 to 100"):
        MatrixConfig(runs=0)
    with pytest.raises(UnknownPreset):
        MatrixConfig(nats=("full-cone", "nope"))


def test_cells_are_read_off_a_run_pair_by_pair_and_a_broken_pair_is_a_disagreement(tmp_path):
    good = Matrix(("port-restricted",), ("lan",), "off")
    write_record(tmp_path / "good", build_run(tmp_path / "good", pairs=2).topology)
    observe(good, read_run(tmp_path / "good"))
    (cell,) = good.cells.values()
    assert cell.key == ("port-restricted", "port-restricted", "lan", "standard") and [o.pair for o in cell.observations] == [1, 2]
    assert cell.expected == "direct" and cell.observed == "direct" and cell.agree and cell.seconds is not None
    assert all(line.startswith(("1 ", "2 ", "3 ", "4 ", "5a ", "5b ", "6 ", "7 ")) for line in cell.observations[1].evidence)
    assert any("probe" in line for line in cell.observations[0].ladder)
    broken = Matrix(("port-restricted",), ("lan",), "off")
    write_record(tmp_path / "bad", build_run(tmp_path / "bad", Faults(one_way=True), pairs=2, faulty_pair=2).topology)
    observe(broken, read_run(tmp_path / "bad"))
    (cell,) = broken.cells.values()
    assert [o.path for o in cell.observations] == ["direct", "failed"]
    assert cell.observed == "mixed" and cell.rate == 0.5 and not cell.agree and broken.disagreements == [cell]


def test_the_grid_marks_each_path_and_each_disagreement():
    text = terminal_grid(sample_matrix())
    assert "a: symmetric" in text and "R! want D" in text and "R 2/2" in text
    assert "1/4 cells NOT as theory expects (relay auto): symmetric × full-cone: relayed, expected direct" in text
    md = markdown_grid(sample_matrix(), "t")
    assert "| a: full-cone | D | D |" in md and "**1/4 cells NOT" in md


def test_the_page_colours_each_cell_links_it_to_its_evidence_and_needs_nothing_from_outside():
    page = render_html(sample_matrix(), "natlab matrix")
    cells = re.findall(r'<td( class="disagree")? style="background:(#\w+)" data-observed="(\w+)"', page)
    assert len(cells) == 4 and [c[2] for c in cells] == ["direct", "direct", "relayed", "relayed"]
    assert [bool(c[0]) for c in cells] == [False, False, True, False] and cells[0][1] == "#2ca02c"
    for anchor in re.findall(r'href="#([\w-]+)"', page):
        assert f'id="{anchor}"' in page
    assert "expected direct (because symmetric and full-cone)" in page  # the tooltip
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page


def test_a_cell_whose_pair_failed_another_check_does_not_agree_whatever_its_path(tmp_path):
    from lab.report.matrix_text import cell_text

    m = Matrix(("port-restricted",), ("lan",), "off")
    write_record(tmp_path, build_run(tmp_path, Faults(firewall_off=True), pairs=2, faulty_pair=2).topology)
    observe(m, read_run(tmp_path))
    (c,) = m.cells.values()
    assert [o.path for o in c.observations] == ["direct", "direct"] and c.observed == "direct"
    assert [o.failed_checks for o in c.observations] == [(), ("5a",)] and not c.agree and c.held == 1
    assert cell_text(c) == "D! check 5a 1/2"


def test_a_matrix_has_a_grid_per_shape_and_b_without_a_nat_has_one_column(tmp_path):
    from lab.topology import CARRIER_PRESET, CGNAT, PUBLIC_PEER, SAME_LAN, STANDARD

    config = MatrixConfig(nats=("full-cone", "symmetric"), shapes=(STANDARD, CGNAT, PUBLIC_PEER, SAME_LAN))
    assert [(c.shape, c.nat_a) for c in config.cells].count((PUBLIC_PEER, "symmetric")) == 1
    assert len(config.cells) == 4 + 4 + 2 + 2 and {c.nat_carrier for c in config.cells} == {CARRIER_PRESET}
    with pytest.raises(LabError, match="SHAPES: unknown shape 'ring'"):
        MatrixConfig(shapes=("ring",))
    matrix = Matrix(("port-restricted",), ("lan",), "off", shapes=(STANDARD, CGNAT, PUBLIC_PEER, SAME_LAN))
    for shape in matrix.shapes:
        run_dir = tmp_path / shape
        write_record(run_dir, build_run(run_dir, shape=shape).topology)
        observe(matrix, read_run(run_dir))
    assert {c.key: c.observed for c in matrix.cells.values()} == {
        ("port-restricted", "port-restricted", "lan", STANDARD): "direct",
        ("port-restricted", "port-restricted", "lan", CGNAT): "direct",
        ("port-restricted", "no NAT", "lan", PUBLIC_PEER): "direct",
        ("port-restricted", "on a's LAN", "lan", SAME_LAN): "local"}
    assert not matrix.disagreements
    text = terminal_grid(matrix)
    assert "shape cgnat:" in text and "shape public-peer:" in text and "no NAT" in text and " L " in f" {text} "
    html = render_html(matrix, "m")
    assert 'id="cell-port-restricted-no_NAT-lan-public-peer"' in html and "<caption>shape same-lan</caption>" in html
    assert "## Shape cgnat" in markdown_grid(matrix, "m")
    from lab.report.matrix_files import write_matrix

    (tmp_path / "out").mkdir()
    files = {f.name for f in write_matrix(matrix, tmp_path / "out")}
    assert {"matrix.png", "matrix.json", "matrix.html"} <= files
