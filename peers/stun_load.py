"""A STUN Binding load generator: how many requests a second a server answers, closed loop.

    python3 -m peers.stun_load --to 198.51.100.66:3578 --seconds 5 --window 64

Keeps `window` requests in flight on one socket (a request unanswered for 0.2 s counts as lost
and frees its place), counts the success responses whose transaction id it is waiting for, and
reports answered requests per second after a short warm-up. The requests are the 20-byte
Binding requests turnutils_stunclient sends (no attributes), so every server sees the same load.
Sends to the one endpoint given. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import struct
import sys
import time

from wire import stun
from wire.protocol import Endpoint

LOST_AFTER_S = 0.2
WARMUP_S = 0.5
SUCCESS = struct.pack("!H", 0x0101)


def request(n: int) -> tuple[bytes, bytes]:
    tid = struct.pack("!IQ", 0x6E61746C, n)  # "natl" + a counter: 12 bytes
    return struct.pack("!HHI", 0x0001, 0, stun.COOKIE) + tid, tid


def load(to: Endpoint, seconds: float, window: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(to.to_tuple())
    pending: dict[bytes, float] = {}
    sent = answered = lost = counted = 0
    start = time.monotonic()
    warm, end = start + WARMUP_S, start + WARMUP_S + seconds
    try:
        while (now := time.monotonic()) < end:
            while len(pending) < window:
                data, tid = request(sent)
                try:
                    sock.send(data)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                pending[tid] = now
                sent += 1
            if select.select([sock], [], [], 0.01)[0]:
                while True:
                    try:
                        reply = sock.recv(2048)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    if reply[:2] == SUCCESS and pending.pop(reply[8:20], None) is not None:
                        answered += 1
                        counted += now >= warm
            stale = [tid for tid, at in pending.items() if now - at > LOST_AFTER_S]
            for tid in stale:
                del pending[tid]
            lost += len(stale)
    finally:
        sock.close()
    return {"to": str(to), "seconds": seconds, "window": window, "sent": sent, "answered": answered, "lost": lost,
            "rps": round(counted / seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.stun_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, help="the STUN server's IP:PORT, the only address sent to")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=64, help="requests in flight")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600 or not 0 < args.window <= 4096:
        parser.error("seconds in (0, 600], window in (0, 4096]")
    print(json.dumps(load(Endpoint.parse(args.to), args.seconds, args.window)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
