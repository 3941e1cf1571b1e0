"""A node's secret key on disk: made on the node's first start, kept across restarts.

The broker's key (room secrets are minted from it) and the relay's TURN secret (time-limited TURN
credentials are minted from it) are both one: 32 random bytes as hex, mode 0600, created
atomically so that two starts cannot make two keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from wire.auth import CredentialError, new_secret, parse_secret


def load_or_create_key(path: Path, what: str = "key") -> bytes:
    """The key at `path`, made there first if there is none; CredentialError if the file is not a key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_secret(path.read_text(), f"{what} in {path}")
    with os.fdopen(fd, "w") as f:
        f.write(new_secret() + "\n")
    return parse_secret(path.read_text(), f"{what} in {path}")


def existing_key(path: Path, what: str, owner: str) -> bytes:
    """The key the node's `owner` made, to mint from it; CredentialError if there is none (the owner does
    not run here) or the file is not a key. Minting never makes a key of its own."""
    if not path.exists():
        raise CredentialError(f"no {what} at {path}: is the {owner} running here?")
    return load_or_create_key(path, what)
