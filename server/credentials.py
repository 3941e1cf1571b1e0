"""The broker key on disk, and room secrets minted from it on the broker's node.

    python3 -m server.credentials room-secret --room demo    # prints the room's secret (hex)
    python3 -m server.credentials room-secret --room a --room b    # one secret per line, in order

The key is made on the broker's first start (32 random bytes, hex, mode 0600) and kept across
restarts, so secrets already handed out stay valid. Minting runs on the broker's node (the lab
does it with the engine's exec), so the key itself never crosses a network.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lab.credentials import CredentialError, new_secret, parse_secret, room_secret
from lab.proto import NAME_RE
from server.node_files import key_file, state_dir


def load_or_create_key(path: Path) -> bytes:
    """The broker key at `path`, made there first if there is none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_secret(path.read_text(), f"broker key in {path}")
    with os.fdopen(fd, "w") as f:
        f.write(new_secret() + "\n")
    return parse_secret(path.read_text(), f"broker key in {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.credentials", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    mint = sub.add_parser("room-secret", help="print the secret of a room")
    mint.add_argument("--room", required=True, action="append", help="a room (repeat for several)")
    mint.add_argument("--state-dir", help="where the broker keeps its key (default: the node's)")
    args = parser.parse_args(argv)
    if not all(NAME_RE.fullmatch(room) for room in args.room):
        parser.error("a room name is 1-64 of A-Z a-z 0-9 . _ -")
    path = key_file(state_dir(args.state_dir))
    if not path.exists():
        print(f"server.credentials: no broker key at {path}: is the broker running here?", file=sys.stderr)
        return 2
    try:
        key = load_or_create_key(path)
        print("\n".join(room_secret(key, room) for room in args.room))
    except CredentialError as exc:
        print(f"server.credentials: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
