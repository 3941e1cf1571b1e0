"""The broker key on disk, and room secrets minted from it on the broker's node.

    python3 -m server.broker_key room-secret --room demo    # {"secrets": {"demo": "<64 hex digits>"}}
    python3 -m server.broker_key room-secret --room a --room b    # one secret per room, one JSON line

The key is made on the broker's first start (32 random bytes, hex, mode 0600) and kept across
restarts, so secrets already handed out stay valid. Minting runs on the broker's node (the lab
does it with the engine's exec), so the key itself never crosses a network.
"""

from __future__ import annotations

import argparse
import json
import sys

from node.key_file import existing_key
from server.state_files import key_file
from wire.auth import CredentialError, room_secret
from wire.protocol import NAME_RE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.broker_key", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    mint = sub.add_parser("room-secret", help="print the secret of a room")
    mint.add_argument("--room", required=True, action="append", help="a room (repeat for several)")
    mint.add_argument("--state-dir", help="where the broker keeps its key (default: the node's)")
    args = parser.parse_args(argv)
    if not all(NAME_RE.fullmatch(room) for room in args.room):
        parser.error("a room name is 1-64 of A-Z a-z 0-9 . _ -")
    try:
        key = existing_key(key_file(args.state_dir), "broker key", "broker")
        print(json.dumps({"secrets": {room: room_secret(key, room) for room in args.room}}))
    except CredentialError as exc:
        print(f"server.broker_key: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
