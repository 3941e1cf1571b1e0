"""A lab described in a file (TOPOLOGY=my-lab.toml): its punch pairs, each with its own shape, NATs and
links, so that one lab can hold standard, same-lan, cgnat and public-peer pairs side by side.

    # my-lab.toml
    link_broker = "lan"            # optional: the broker's access link

    [[pair]]                       # pair 1: every key is optional (the standard pair's defaults)
    nat_a = "symmetric"
    nat_b = "port-restricted"

    [[pair]]                       # pair 2
    shape = "same-lan"
    nat_a = "port-restricted,hairpin=on"
    link_a = "delay=20ms"

    [[pair]]                       # pair 3: two home routers behind a carrier NAT
    shape = "cgnat"
    nat_carrier = "full-cone,hairpin=off"

Names and addresses follow from the pairs' order, as for PAIRS=N (lab.topology.build_topology). Every
error names the file and the line: the line of the bad value, or of the pair it is missing from.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

from lab.topology import MAX_PAIRS, PairSettings, Topology, TopologyError, build_topology
from nat.behaviour import UnknownPreset
from node.link import UnknownLink, validate_link

SUFFIX = ".toml"
PAIR_KEYS = tuple(f.name for f in fields(PairSettings))
TOP_KEYS = ("link_broker", "pair")


def is_topology_file(name: str) -> bool:
    """Whether TOPOLOGY names a file rather than a built-in shape."""
    return name.endswith(SUFFIX) or "/" in name


class _Lines:
    """Where things are in the file's text: tomllib says where a syntax error is, not where a value was."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()
        self.pairs = [n for n, line in enumerate(self.lines, 1) if re.match(r"\s*\[\[\s*pair\s*\]\]", line)]

    def of_key(self, key: str, pair: int | None) -> int:
        """The line of `key` in pair `pair` (1-based; None: before the first pair), else that pair's header."""
        start = 1 if pair is None else self.pairs[pair - 1]
        ends = [n for n in self.pairs if n > start]
        end = ends[0] if ends else len(self.lines) + 1
        for n in range(start, end):
            if re.match(rf"\s*{re.escape(key)}\s*=", self.lines[n - 1]):
                return n
        return start

    def error(self, line: int, what: str) -> TopologyError:
        return TopologyError(f"{self.path}:{line}: {what}")


def load_topology_file(path: Path, project: str = "natlab") -> Topology:
    """The lab the file describes, or TopologyError naming the file, the line and what is wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(f"TOPOLOGY={path}: cannot read it ({exc.strerror or exc})") from None
    where = _Lines(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise where.error(int(line.group(1)) if line else 1, f"not TOML: {exc}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise where.error(where.of_key(key, None), f"unknown key {key!r}; valid: {', '.join(TOP_KEYS)}")
    pairs = data.get("pair")
    if not isinstance(pairs, list) or not pairs:
        raise where.error(1, "no pair: describe each with a [[pair]] table (see lab/topology_file.py)")
    if len(pairs) > MAX_PAIRS:
        raise where.error(where.pairs[MAX_PAIRS], f"{len(pairs)} pairs: the lab holds {MAX_PAIRS} at most")
    settings = [_pair(where, number, table) for number, table in enumerate(pairs, 1)]
    link_broker = data.get("link_broker", "lan")
    try:
        validate_link(str(link_broker))
    except (UnknownLink, TopologyError) as exc:
        raise where.error(where.of_key("link_broker", None), str(exc)) from None
    return build_topology(project=project, pair_settings=tuple(settings), link_broker=str(link_broker))


def _pair(where: _Lines, number: int, table: dict) -> PairSettings:
    for key, value in table.items():
        if key not in PAIR_KEYS:
            raise where.error(where.of_key(key, number), f"pair {number}: unknown key {key!r}; valid: "
                              f"{', '.join(PAIR_KEYS)}")
        if not isinstance(value, str):
            raise where.error(where.of_key(key, number), f"pair {number}: {key} must be a string, not {value!r}")
    for key in PAIR_KEYS:  # each value checked alone, so that the error points at its line
        if key in table:
            try:
                PairSettings(**{key: table[key]}).validated()
            except (UnknownPreset, UnknownLink, TopologyError) as exc:
                raise where.error(where.of_key(key, number), f"pair {number}: {exc}") from None
    return PairSettings(**table)
