"""Room secrets for the lab's peers, minted on the broker's node (the broker key never leaves it)."""

from __future__ import annotations

from lab.engines import node_commands
from lab.engines.base import Engine


def mint(engine: Engine, room: str) -> str:
    """The secret of `room`, as the lab's broker derives it: hand it to the room's peers only."""
    return mint_many(engine, [room])[room]


def mint_many(engine: Engine, rooms: list[str]) -> dict[str, str]:
    """The secrets of several rooms from one command on the broker's node (a hundred pairs, one exec)."""
    return node_commands.mint_secrets(rooms).run(engine, engine.topology.broker.name)
