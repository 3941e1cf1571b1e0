"""The Docker-only system tests: here `engine` is the Docker lab alone, not one lab per engine.

These tests were written and reviewed for Docker (docker exec -it, the node image's coturn and
stun-client). The folder marks them docker (tests/conftest.py); like the root `engine`, the lab is
stood up once for each module that asks for it and torn down after it.
"""

from __future__ import annotations

import pytest

from tests.helpers.labs import lab, say


@pytest.fixture(scope="module")
def engine():
    eng = lab("docker")
    eng.up(say)
    yield eng
    eng.down(say)
