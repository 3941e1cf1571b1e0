"""System tests on netns: the traversal matrix against theory, cell by cell, in both relay modes; a
cell broken on purpose; and matrix.html as a real browser (headless Chromium) shows it."""

from __future__ import annotations

import subprocess

import pytest

from lab.engines import node_commands
from lab.engines.registry import make_engine
from tests.helpers.labs import needs_root, say
from tests.helpers.matrices import matrix_of

pytestmark = [needs_root]


@pytest.mark.parametrize("relay", ["off", "auto"])
def test_every_cell_of_three_presets_takes_the_path_theory_allows(relay, tmp_path):
    matrix = matrix_of("netns", tmp_path, relay)
    assert len(matrix.cells) == 9
    assert not matrix.disagreements, [(c.key, c.observed, c.expected, c.failed_checks) for c in matrix.disagreements]
    symmetric = matrix.cell("symmetric", "symmetric", "lan")
    assert symmetric.observed == ("relayed" if relay == "auto" else "failed")
    assert matrix.cell("full-cone", "symmetric", "lan").observed == "direct"
    assert all(c.seconds is not None for c in matrix.cells.values() if c.observed != "failed")


def test_the_other_shapes_rows_take_the_paths_theory_allows(tmp_path):
    matrix = matrix_of("netns", tmp_path, "off", nats=("full-cone", "symmetric"),
                       shapes=("cgnat", "public-peer", "same-lan"))
    assert len(matrix.cells) == 4 + 2 + 2
    assert not matrix.disagreements, [(c.key, c.observed, c.expected, c.failed_checks) for c in matrix.disagreements]
    assert matrix.cell("symmetric", "symmetric", "lan", "cgnat").observed == "failed"  # no relay: the home NATs
    assert matrix.cell("symmetric", "no NAT", "lan", "public-peer").observed == "direct"
    assert matrix.cell("symmetric", "on a's LAN", "lan", "same-lan").observed == "local"


def test_a_lab_whose_pairs_have_different_nats_gives_each_router_its_own_rules():
    import re

    from lab.topology import PairSettings, build_topology

    topo = build_topology(project="nltest-mxr", pair_settings=(PairSettings("full-cone", "symmetric"),
                                                              PairSettings("symmetric", "full-cone")))
    engine = make_engine("netns", topo)
    engine.up(say)
    try:
        routers = [pair.router.name for pair in topo.pairs]
        shown = {name: node_commands.router_show().run(engine, name)["nat"] for name in routers}
        rules = {name: engine.exec(name, ["nft", "list", "ruleset"]).stdout for name in routers}
    finally:
        engine.down(say)
    assert shown == {"router-a": "full-cone", "router-b": "symmetric", "router-a2": "symmetric",
                     "router-b2": "full-cone"}

    def shape(ruleset: str) -> str:  # the rules without the router's own addresses and interface names
        return re.sub(r'"[^"]*"', '"-"', re.sub(r"\d+\.\d+\.\d+\.\d+(/\d+)?", "IP", ruleset))

    assert shape(rules["router-a"]) == shape(rules["router-b2"]) != shape(rules["router-b"])
    assert shape(rules["router-b"]) == shape(rules["router-a2"])


def test_a_link_axis_puts_each_cell_on_its_link_and_the_captures_show_its_delay(tmp_path):
    """A delay without jitter or loss: check 6 then has one answer (a jittered, lossy link with three
    messages can miss it by chance; see the issue's note)."""
    from lab.analysis.matrix import Matrix, observe
    from lab.analysis.run import read_run
    from lab.experiment.matrix_run import MatrixConfig, run_matrix

    slow_link = "delay=100ms"
    config = MatrixConfig(nats=("full-cone",), links=("lan", slow_link), relay="off")
    _, runs = run_matrix(lambda t: make_engine("netns", t), "netns", "nltest-mx", config, tmp_path, say)
    matrix = Matrix(config.nats, config.links, config.relay)
    for run_dir in runs:
        observe(matrix, read_run(run_dir))
    assert not matrix.disagreements, [(c.key, c.observed, c.failed_checks) for c in matrix.disagreements]
    slow = matrix.cell("full-cone", "full-cone", slow_link)
    # the introduction crosses the peer's access link, then its probe the partner's: two one-way delays at least
    assert slow.observed == "direct" and slow.seconds >= 2 * 0.100, slow.seconds
    assert any(e.startswith("6 ") for o in slow.observations for e in o.evidence)  # the delay, seen in the pcaps
    assert matrix.cell("full-cone", "full-cone", "lan").observed == "direct"


def test_a_cell_whose_router_lost_its_firewall_is_caught(tmp_path):
    broken = ("full-cone", "port-restricted", "lan", "standard")

    def lab_with_a_broken_cell(topology):
        engine = make_engine("netns", topology)
        up = engine.up

        def up_then_break(progress):
            up(progress)
            pair = next(pp for pp in topology.punch_pairs if (pp.a.router.nat, pp.b.router.nat) == broken[:2])
            node_commands.router_apply(firewall=False).run(engine, pair.b.router.name)

        engine.up = up_then_break
        return engine

    matrix = matrix_of("netns", tmp_path, "auto", lab_with_a_broken_cell)
    assert [c.key for c in matrix.disagreements] == [broken]
    assert "5a" in matrix.cell(*broken).failed_checks


def test_the_page_shows_the_grid_in_a_real_browser(tmp_path):
    """matrix.html in headless Chromium (Debian's): the cells, their colours and their links as drawn."""
    from PIL import Image

    from lab.engines.host_packages import ensure_packages
    from lab.report.matrix_files import write_matrix
    from tests.helpers.matrices import sample_matrix

    ensure_packages({"chromium": "chromium"}, say)
    write_matrix(sample_matrix(), tmp_path)
    page = (tmp_path / "matrix.html").resolve().as_uri()
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,700"]
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert dom.count('data-observed="') == 4 and dom.count('class="disagree"') == 1
    for anchor in ("cell-symmetric-full-cone-lan-standard", "cell-full-cone-full-cone-lan-standard"):
        assert f'href="#{anchor}"' in dom and f'id="{anchor}"' in dom
    shot = tmp_path / "matrix-screenshot.png"  # saved beside the page
    subprocess.run([*browser, f"--screenshot={shot}", page], capture_output=True, timeout=120, check=True)
    pixels = Image.open(shot).convert("RGB").getdata()
    counts = {name: sum(1 for p in pixels if p == rgb) for name, rgb in
              (("direct", (0x2C, 0xA0, 0x2C)), ("relayed", (0x94, 0x67, 0xBD)), ("frame", (0xD6, 0x27, 0x28)))}
    assert all(n > 200 for n in counts.values()), counts  # green and purple cells, the red frame of the bad one
