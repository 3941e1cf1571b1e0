"""TOPOLOGY=<file>.toml: a lab's pairs described as data, each with its own shape, NATs and links; every
error names the file and the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.engines.docker.compose_file import render
from lab.topology import PairSettings, TopologyError, build_topology
from lab.topology_file import is_topology_file, load_topology_file
from tests.helpers import ROOT

MIXED = """\
# one standard pair, one on a LAN of its own
link_broker = "delay=5ms"

[[pair]]
nat_b = "symmetric"

[[pair]]
shape = "same-lan"
nat_a = "full-cone,hairpin=on"
link_a = "delay=20ms"
"""


def written(tmp_path: Path, text: str, name: str = "lab.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_file_of_two_pairs_is_the_builder_s_lab_with_those_pairs(tmp_path):
    topo = load_topology_file(written(tmp_path, MIXED), project="mixed")
    assert topo == build_topology(project="mixed", link_broker="delay=5ms", pair_settings=(
        PairSettings(nat_b="symmetric"),
        PairSettings(shape="same-lan", nat_a="full-cone,hairpin=on", link_a="delay=20ms")))
    first, second = topo.punch_pairs
    assert not first.same_lan and second.same_lan
    assert first.b.router.nat == "symmetric" and second.a.router.nat == "full-cone,hairpin=on"


def test_a_file_with_one_default_pair_is_the_standard_lab_name_for_name(tmp_path):
    topo = load_topology_file(written(tmp_path, "[[pair]]\n"))
    assert render(topo) == render(build_topology())


@pytest.mark.parametrize("text, line, said", [
    ('[[pair]]\nnat_a = "symmetric"\n\n[[pair]]\nnat_b = "full-moon"\n', 5, "pair 2: unknown NAT preset 'full-moon'"),
    ('[[pair]]\nshape = "ring"\n', 2, "pair 1: TOPOLOGY must be one of standard, same-lan"),
    ('[[pair]]\nlink_a = "delay=-5ms"\n', 2, "pair 1: "),
    ('[[pair]]\nnat = "symmetric"\n', 2, "pair 1: unknown key 'nat'; valid: nat_a, nat_b, link_a, link_b, shape"),
    ('[[pair]]\nnat_a = 3\n', 2, "pair 1: nat_a must be a string, not 3"),
    ('pairs = 2\n[[pair]]\n', 1, "unknown key 'pairs'; valid: link_broker, pair"),
    ('# nothing\n', 1, "no pair: describe each with a [[pair]] table"),
    ('[[pair]]\nnat_a = "x\n', 2, "not TOML"),
    ('link_broker = "warp"\n[[pair]]\n', 1, "unknown link"),
])
def test_a_bad_file_is_refused_with_its_line(tmp_path, text, line, said):
    path = written(tmp_path, text)
    with pytest.raises(TopologyError) as caught:
        load_topology_file(path)
    assert str(caught.value).startswith(f"{path}:{line}: ") and said in str(caught.value), str(caught.value)


def test_only_a_toml_file_or_a_path_is_a_file_a_shape_is_a_name():
    assert is_topology_file("my-lab.toml") and is_topology_file("labs/mine")
    assert not is_topology_file("same-lan")


def test_the_cli_refuses_settings_beside_a_file_in_one_line_but_takes_the_makefile_s_defaults(tmp_path):
    path = written(tmp_path, MIXED)

    def status(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab", "--engine", "netns", "--topology", str(path), *args,
                               "status"], cwd=ROOT, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", **env})

    refused = status("--nat-a", "symmetric", "--pairs", "3")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"natlab: error: TOPOLOGY={path} says every pair's settings: NAT_A, PAIRS "
                                      "cannot be given beside it")
    taken = status(NAT_A="port-restricted", LINK_B="lan", PAIRS="1")  # what `make` hands on by default
    assert taken.stderr == "" and taken.stdout.rstrip().endswith("lab is down")  # status of a lab not up: exit 3
    assert "router-a2" in taken.stdout and "router-b2" not in taken.stdout
