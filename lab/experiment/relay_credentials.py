"""TURN credentials for the lab's peers, minted on the relay's node (its secret never leaves it)."""

from __future__ import annotations

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.engines.node_commands import TurnCredential
from lab.topology import TURN_PORT

MARGIN_S = 60  # a credential outlives the run it is for by this much


def turn_credentials(engine: Engine, relay_mode: str, valid_s: float) -> dict[str, TurnCredential]:
    """Each peer's TURN credential, valid `valid_s` (and MARGIN_S), with the relay's address on its router's
    segment, from one command on the relay's node; none with relay off (or a lab without a relay)."""
    relay = engine.topology.relay
    if relay_mode == "off" or relay is None:
        return {}
    pairs = engine.topology.pairs
    minted = node_commands.mint_turn_credentials([p.label for p in pairs], int(valid_s) + MARGIN_S).run(
        engine, relay.name)
    return {p.label: TurnCredential(f"{engine.topology.address_facing(relay, p)}:{TURN_PORT}",
                                    minted[p.label]["username"], minted[p.label]["password"]) for p in pairs}
