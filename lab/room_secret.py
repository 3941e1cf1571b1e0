"""Room secrets for the lab's peers, minted on the broker's node (the broker key never leaves it)."""

from __future__ import annotations

from lab.engine import Engine, LabError

MINT = ["python3", "-m", "server.credentials", "room-secret"]


def mint(engine: Engine, room: str) -> str:
    """The secret of `room`, as the lab's broker derives it: hand it to the room's peers only."""
    return mint_many(engine, [room])[room]


def mint_many(engine: Engine, rooms: list[str]) -> dict[str, str]:
    """The secrets of several rooms from one command on the broker's node (a hundred pairs, one exec)."""
    res = engine.exec(engine.topology.broker.name, [*MINT, *(arg for room in rooms for arg in ("--room", room))])
    secrets = res.stdout.split()
    if not res.ok or len(secrets) != len(rooms):
        raise LabError(f"could not mint secrets for rooms {', '.join(rooms)} on the broker: {res.stderr.strip()}")
    return dict(zip(rooms, secrets))
