"""An ICE agent (aioice, aiortc's ICE stack) as a natlab peer: `make run` recipe.

    make run MOUNT=docs/recipes A='python3 ice_agent.py' B='python3 ice_agent.py' EXPECT=direct

Both sides gather candidates (host, server-reflexive from the lab's STUN service NATLAB_STUN, and
relayed from its TURN relay when NATLAB_TURN is given), write them to the pair's mailbox
(NATLAB_MAILBOX/<side>.json), read the other side's, and run ICE's connectivity checks; side a
controls. Then a sends MESSAGES numbered messages and b echoes each; both exit 0 once done. Nothing
here knows natlab beyond the environment: the lab judges the path from its pcaps.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aioice

MESSAGES = 10
WAIT_S = 20.0


def endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def read_partner(path: Path) -> dict:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no offer from the partner at {path}")
        await asyncio.sleep(0.05)
    return json.loads(path.read_text())


async def main() -> int:
    side, partner = os.environ["NATLAB_SIDE"], "b" if os.environ["NATLAB_SIDE"] == "a" else "a"
    mailbox = Path(os.environ["NATLAB_MAILBOX"])
    turn = {}
    if os.environ.get("NATLAB_TURN"):
        turn = {"turn_server": endpoint(os.environ["NATLAB_TURN"]), "turn_username": os.environ["NATLAB_TURN_USERNAME"],
                "turn_password": os.environ["NATLAB_TURN_PASSWORD"]}
    conn = aioice.Connection(ice_controlling=side == "a", stun_server=endpoint(os.environ["NATLAB_STUN"]),
                             use_ipv6=False, **turn)
    await conn.gather_candidates()
    offer = {"ufrag": conn.local_username, "pwd": conn.local_password,
             "candidates": [c.to_sdp() for c in conn.local_candidates]}
    (mailbox / f"{side}.tmp").write_text(json.dumps(offer))
    (mailbox / f"{side}.tmp").rename(mailbox / f"{side}.json")  # whole or not at all
    print(f"{side}: offered {len(offer['candidates'])} candidates: {offer['candidates']}", flush=True)
    answer = await read_partner(mailbox / f"{partner}.json")
    conn.remote_username, conn.remote_password = answer["ufrag"], answer["pwd"]
    for sdp in answer["candidates"]:
        await conn.add_remote_candidate(aioice.Candidate.from_sdp(sdp))
    await conn.add_remote_candidate(None)  # end of candidates
    await asyncio.wait_for(conn.connect(), WAIT_S)
    print(f"{side}: connected", flush=True)
    for seq in range(1, MESSAGES + 1):
        if side == "a":
            await conn.send(f"hello #{seq}".encode())
            echo = await asyncio.wait_for(conn.recv(), WAIT_S)
            assert echo == f"echo hello #{seq}".encode(), echo
        else:
            got = await asyncio.wait_for(conn.recv(), WAIT_S)
            await conn.send(b"echo " + got)
    print(f"{side}: {MESSAGES} messages echoed", flush=True)
    await asyncio.sleep(0.5)  # the last echo's way back
    await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
