"""Room secrets for the lab's peers, minted on the broker's node (the broker key never leaves it)."""

from __future__ import annotations

from lab.engine import Engine, LabError

MINT = ["python3", "-m", "server.credentials", "room-secret", "--room"]


def mint(engine: Engine, room: str) -> str:
    """The secret of `room`, as the lab's broker derives it: hand it to the room's peers only."""
    res = engine.exec(engine.topology.broker.name, [*MINT, room])
    if not res.ok:
        raise LabError(f"could not mint a secret for room {room!r} on the broker: {res.stderr.strip()}")
    return res.stdout.strip()
