"""Time-limited TURN credentials (TURN REST API, coturn's use-auth-secret), minted on the relay's node.

    python3 -m relay.credentials --user a --user b --ttl 60
    {"credentials": {"a": {"username": "1796166065:a", "password": "...", "expires": 1796166065}, ...}}

The relay's secret is made on its first start (mode 0600) and never leaves its node: the lab asks
the node for credentials, as it asks the broker's node for room secrets. A credential is the
username `<expiry>:<name>` and the password base64(HMAC-SHA1(secret, username)); coturn recomputes
the password from the username and refuses it once the expiry has passed (401).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

from node.key_file import existing_key
from node.settings import private_file
from wire.auth import CredentialError
from wire.protocol import NAME_RE

MAX_TTL_S = 24 * 3600


def secret_file() -> Path:
    return private_file("turn.secret")


def secret_text(key: bytes) -> str:
    """The form coturn's static-auth-secret takes the key in."""
    return key.hex()


def mint(key: bytes, name: str, ttl_s: int, now: float | None = None) -> dict:
    """A credential for `name`, valid `ttl_s` seconds from now."""
    expires = int(time.time() if now is None else now) + ttl_s
    username = f"{expires}:{name}"
    digest = hmac.new(secret_text(key).encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "password": base64.b64encode(digest).decode(), "expires": expires}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relay.credentials", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", required=True, action="append", help="a name (repeat for several)")
    parser.add_argument("--ttl", type=int, default=600, help=f"seconds the credentials are valid (1-{MAX_TTL_S})")
    args = parser.parse_args(argv)
    if not all(NAME_RE.fullmatch(user) for user in args.user):
        parser.error("a user name is 1-64 of A-Z a-z 0-9 . _ -")
    if not 1 <= args.ttl <= MAX_TTL_S:
        parser.error(f"--ttl must be 1 to {MAX_TTL_S} seconds, not {args.ttl}")
    try:
        key = existing_key(secret_file(), "TURN secret", "relay")
    except CredentialError as exc:
        print(f"relay.credentials: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"credentials": {user: mint(key, user, args.ttl) for user in args.user}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
