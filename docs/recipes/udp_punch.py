"""The smallest hole punch a program can do: one STUN request, the mailbox, UDP both ways. `make run` recipe.

    make run A='python3 udp_punch.py' B='python3 udp_punch.py' EXPECT=direct

Each side asks the lab's STUN service (NATLAB_STUN) for its public address with one Binding
request (aioice's STUN codec), swaps it with the partner through the pair's mailbox, then sends
a datagram to the partner's public address every INTERVAL_S for SECONDS: the first ones open its
own NAT and are dropped by the partner's, the later ones cross. It exits 0 once it has heard the
partner. The bench runs it in 100 pairs at once (bench/run_bench.py).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from aioice import stun

SECONDS = 3.0
INTERVAL_S = 0.1
WAIT_S = 20.0


def endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def public_address(sock: socket.socket) -> tuple[str, int]:
    """Our address as the STUN server sees it (after our NAT), retried as STUN clients do."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    sock.settimeout(0.5)
    for _ in range(10):
        sock.sendto(bytes(request), endpoint(os.environ["NATLAB_STUN"]))
        try:
            answer = stun.parse_message(sock.recv(2048))
        except (TimeoutError, socket.timeout, ValueError):
            continue
        if answer.transaction_id == request.transaction_id:
            return answer.attributes["XOR-MAPPED-ADDRESS"]
    raise TimeoutError("no STUN answer")


def swap(mine: tuple[str, int]) -> tuple[str, int]:
    """Write our address to the mailbox (whole, by rename), read the partner's."""
    box, side, partner = Path(os.environ["NATLAB_MAILBOX"]), os.environ["NATLAB_SIDE"], os.environ["NATLAB_PARTNER"]
    (box / f"{side}.tmp").write_text(json.dumps(list(mine)))
    (box / f"{side}.tmp").rename(box / f"{side}.json")
    theirs, deadline = box / f"{partner[0]}.json", time.monotonic() + WAIT_S
    while not theirs.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no address from the partner at {theirs}")
        time.sleep(0.05)
    host, port = json.loads(theirs.read_text())
    return host, port


def main() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        partner = swap(public_address(sock))
        heard, now = 0, time.monotonic()
        end, next_send = now + SECONDS, now
        while now < end:
            if now >= next_send:  # one datagram per interval, whatever arrives meanwhile
                sock.sendto(f"hello from {os.environ['NATLAB_LABEL']}".encode(), partner)
                next_send += INTERVAL_S
            sock.settimeout(max(0.001, min(next_send, end) - now))
            try:
                heard += sock.recvfrom(2048)[1] == partner
            except (TimeoutError, socket.timeout):
                pass
            now = time.monotonic()
    print(f"{os.environ['NATLAB_LABEL']}: heard the partner {heard} times at {partner[0]}:{partner[1]}")
    return 0 if heard else 1


if __name__ == "__main__":
    sys.exit(main())
