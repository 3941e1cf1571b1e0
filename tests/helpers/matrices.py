"""Traversal matrices for the tests: one built by hand for the renderers (text, HTML, the browser), and
one punched on a real lab."""

from __future__ import annotations

from lab.analysis.matrix import Cell, Matrix, Observation, observe
from lab.analysis.run import read_run
from lab.engines.registry import make_engine
from lab.experiment.matrix_run import MatrixConfig, run_matrix
from tests.helpers.labs import say

THREE = ("full-cone", "port-restricted", "symmetric")
PROJECT = "nltest-mx"


def cell(nat_a: str, nat_b: str, expected: str, *paths: str) -> Cell:
    c = Cell(nat_a, nat_b, "lan", expected, f"because {nat_a} and {nat_b}")
    c.observations = [Observation("r1", 1, p, 0.012, ("3 path: ok",), ("+0.001s peer-a → broker: register",))
                      for p in paths]
    return c


def sample_matrix() -> Matrix:
    """Two NATs, four cells: one relayed where theory wants direct, one over two runs."""
    m = Matrix(("full-cone", "symmetric"), ("lan",), "auto")
    for c in (cell("full-cone", "full-cone", "direct", "direct"), cell("full-cone", "symmetric", "direct", "direct"),
              cell("symmetric", "full-cone", "direct", "relayed"),
              cell("symmetric", "symmetric", "relayed", "relayed", "relayed")):
        m.cells[c.key] = c
    return m


def matrix_of(engine: str, tmp_path, relay: str, make_lab=None, nats: tuple[str, ...] = THREE,
              shapes: tuple[str, ...] = ("standard",)) -> Matrix:
    """The matrix of `nats` (THREE presets) in `shapes` punched on a lab of `engine` (made by `make_lab`, if
    given), read back."""
    config = MatrixConfig(nats=nats, relay=relay, shapes=shapes)
    _, runs = run_matrix(make_lab or (lambda t: make_engine(engine, t)), engine, PROJECT, config, tmp_path, say)
    matrix = Matrix(config.nats, config.links, relay, shapes=shapes)
    for run_dir in runs:
        observe(matrix, read_run(run_dir))
    return matrix
