"""Fixtures shared by the tests, and the markers each folder gives its tests.

    tests/unit/            no lab: codecs, rules, broker logic on loopback, analysis of built pcaps
    tests/system/both/     the real lab once on each engine, through `engine` below
    tests/system/netns/    the netns engine only (marker netns: root, no Docker)
    tests/system/docker/   the Docker engine only (marker docker: root); its conftest.py makes
                           `engine` the Docker lab alone
    tests/helpers/         helper modules (tests.helpers.labs, .loopback, .pcap_factory, ...)

`engine` is the real lab, once on each engine: netns (marker netns) and Docker (marker docker), the
marks riding on its parameters. It is stood up once for each system-test module that asks for it
and torn down after it (module scope: every module starts from a fresh lab); pytest runs a
module's netns tests before its Docker ones.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers.labs import lab, say

# The tests rely on Ctrl-C as a terminal gives it, whoever started them (a shell that ignores SIGINT, as
# background jobs and some CI runners do, would hand the ignored signal on to every program they spawn).
signal.signal(signal.SIGINT, signal.default_int_handler)

TESTS = Path(__file__).resolve().parent
FOLDER_MARKS = {("system", "netns"): "netns", ("system", "docker"): "docker"}
ENGINE_MARKS = ("netns", "docker")

ENGINES = [
    pytest.param("netns", marks=pytest.mark.netns, id="netns"),
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """tests/system/netns and tests/system/docker mark their tests netns / docker; tests/system/both
    gets its marks from `engine`'s parameters. A system test with neither would run under no make
    target, so it is refused."""
    unmarked = []
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        parts = item.path.relative_to(TESTS).parts
        if parts[:2] in FOLDER_MARKS:
            item.add_marker(FOLDER_MARKS[parts[:2]])
        if parts[0] == "system" and not any(item.get_closest_marker(m) for m in ENGINE_MARKS):
            unmarked.append(item.nodeid)
    if unmarked:
        raise pytest.UsageError("system tests without an engine (use the `engine` fixture, or put them under "
                                "tests/system/netns or tests/system/docker):\n  " + "\n  ".join(unmarked))


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    eng = lab(request.param)
    eng.up(say)
    yield eng
    eng.down(say)
