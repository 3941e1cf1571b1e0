"""`make matrix`: every NAT pair punched at once, one punch pair per cell, in a lab of their own.

The cells are the ordered pairs of the NAT settings asked for (a's × b's, six presets: 36), for
each link asked for (both sides of the cell's pair on it), for each shape asked for (SHAPES: the
standard and cgnat shapes have a's × b's, behind the carrier's NAT for cgnat; public-peer and
same-lan, whose b has no NAT of its own, a's alone). A lab whose pairs each have their own
settings (lab.topology.PairSettings) holds them: on netns every cell in one lab; on Docker in
batches of DOCKER_BATCH cells, one lab each, since a container per node makes a 36-pair lab
(150 containers) more than a 2-core machine starts in minutes. Each lab is punched RUNS times
(each run a punch test of its own, captured and judged as ever), then taken down, whatever
happens. With the user's programs (`make matrix A= B=`), each run is a `make run` of them
(lab.experiment.user_run) instead of a punch test: every cell's pair runs them at once. The runs
land in the matrix's directory; lab.analysis.matrix reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path

from lab.engines.base import Engine
from lab.errors import LabError, Progress
from lab.experiment.punch_test import PunchTestConfig, point_latest, run_punch_test
from lab.experiment.user_run import ProgramRunConfig, run_programs
from lab.topology import (
    CARRIER_PRESET,
    MAX_PAIRS,
    ONE_NAT_COLUMNS,
    SHAPES,
    STANDARD,
    PairSettings,
    Topology,
    build_topology,
)
from nat.behaviour import DEFAULT_PRESET, PRESETS, validate_preset
from node.link import DEFAULT_LINK, validate_link

# Cells per Docker lab: two rows of the default matrix, 52 containers. Measured on 2 cores, the
# default matrix took 242 s in labs of 6, 214 s in labs of 12 (each lab's up and down are fixed costs).
DOCKER_BATCH = 12
MATRIX_PREFIX = "matrix-"


@dataclass(frozen=True)
class MatrixConfig:
    nats: tuple[str, ...] = tuple(PRESETS)
    links: tuple[str, ...] = (DEFAULT_LINK,)
    relay: str = "auto"
    runs: int = 1
    messages: int = 3
    programs: ProgramRunConfig | None = None  # the user's programs in every cell, or None: the lab's peers
    shapes: tuple[str, ...] = (STANDARD,)
    nat_carrier: str = CARRIER_PRESET  # the carriers' NAT, in cgnat cells

    def __post_init__(self) -> None:
        if not self.shapes:
            raise LabError(f"SHAPES names no shape: give some of {', '.join(SHAPES)}, comma-separated")
        for shape in self.shapes:
            if shape not in SHAPES:
                raise LabError(f"SHAPES: unknown shape {shape!r}; valid: {', '.join(SHAPES)}")
        validate_preset(self.nat_carrier)
        if not self.nats:
            raise LabError(f"NATS names no NAT: give some of {', '.join(PRESETS)}, comma-separated")
        for nat in self.nats:
            validate_preset(nat)
        for link in self.links:
            validate_link(link)
        if not 1 <= self.runs <= 100:
            raise LabError(f"RUNS must be 1 to 100, not {self.runs}")
        if len(self.cells) > MAX_PAIRS:
            raise LabError(f"{len(self.cells)} cells: at most {MAX_PAIRS} (one pair each); "
                           "ask for fewer NATS, LINKS or SHAPES")

    @property
    def cells(self) -> tuple[PairSettings, ...]:
        """Every ordered pair of NATs, for each shape and link: a's NAT × b's NAT, rows first (a's NAT alone
        where b has none of its own)."""
        return tuple(PairSettings(a, b, link, link, shape, self.nat_carrier)
                     for shape, link in product(self.shapes, self.links) for a in self.nats
                     for b in ((DEFAULT_PRESET,) if shape in ONE_NAT_COLUMNS else self.nats))


def batches(cells: tuple[PairSettings, ...], engine: str) -> list[tuple[PairSettings, ...]]:
    size = DOCKER_BATCH if engine == "docker" else len(cells)
    return [cells[i:i + size] for i in range(0, len(cells), size)]


def run_matrix(make_lab: Callable[[Topology], Engine], engine_name: str, project: str, config: MatrixConfig,
               captures_root: Path, progress: Progress) -> tuple[Path, list[Path]]:
    """Punch every cell (or run the programs in it) `config.runs` times; return the matrix directory and
    its runs' directories."""
    matrix_dir = captures_root / (MATRIX_PREFIX + time.strftime("%Y%m%d-%H%M%S"))
    matrix_dir.mkdir(parents=True)
    groups = batches(config.cells, engine_name)
    if len(groups) > 1:
        progress(f"{len(config.cells)} cells in {len(groups)} labs of at most {DOCKER_BATCH} pairs "
                 f"({engine_name}: a container per node)")
    runs: list[Path] = []
    for number, group in enumerate(groups, 1):
        engine = make_lab(build_topology(project=project, pair_settings=group))
        progress(f"lab {number}/{len(groups)}: {len(group)} cells, one punch pair each")
        engine.up(progress)
        try:
            for run in range(config.runs):
                progress(f"run {run + 1}/{config.runs} of lab {number}/{len(groups)}")
                if config.programs is not None:
                    runs.append(run_programs(engine, replace(config.programs, relay=config.relay), matrix_dir,
                                             progress))
                else:
                    test = PunchTestConfig.for_pairs(len(group), messages=config.messages, relay=config.relay)
                    runs.append(run_punch_test(engine, test, matrix_dir, progress))
        finally:
            engine.down(progress)
    point_latest(captures_root, matrix_dir)
    return matrix_dir, runs
