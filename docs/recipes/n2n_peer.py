"""One side of an n2n VPN (Debian's `n2n`, version 1) as a natlab peer: `make run` recipe.

    make run A='python3 n2n_peer.py' B='python3 n2n_peer.py' WAN='supernode -l 7654'

n2n's edge joins the community of its pair through the supernode (the WAN program, at NATLAB_WAN),
which introduces the two edges and forwards their frames until they reach each other directly:
n2n's own NAT traversal, none of natlab's. Each side brings up a tun device with 172.30.<pair>.1
(a) or .2 (b). Then a sends ECHOES numbered UDP datagrams through the tunnel to b, which echoes
them; a writes each round trip to NATLAB_OUT/rtt.json and both exit 0 when at least half came
back. Nothing here knows natlab beyond the environment: the lab judges the path from its pcaps.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ECHOES = 100
INTERVAL_S = 0.05
PORT = 9000
BYE = b"bye"
IDLE_S = 3.0  # side b's wait for the next echo once they began


def tunnel_ip(pair: str, side: str) -> str:
    return f"172.30.{int(pair)}.{1 if side == 'a' else 2}"


def wait_for_address(device: str, address: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while address not in subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", device],
                                         capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{device} did not get {address} in {limit_s:g}s")
        time.sleep(0.1)


def ping(sock: socket.socket, partner: str) -> list[float | None]:
    """Side a: ECHOES round trips through the tunnel, None for the lost ones."""
    sock.settimeout(0.5)
    rtts: list[float | None] = []
    for seq in range(ECHOES):
        sent = time.monotonic()
        sock.sendto(f"echo {seq} ".encode().ljust(200, b"."), (partner, PORT))
        try:
            while int(sock.recv(2048).split()[1]) != seq:
                pass
            rtts.append(round((time.monotonic() - sent) * 1000, 3))
        except (TimeoutError, socket.timeout, IndexError, ValueError):
            rtts.append(None)
        time.sleep(INTERVAL_S)
    for _ in range(3):
        sock.sendto(BYE, (partner, PORT))
        time.sleep(0.1)
    return rtts


def echo(sock: socket.socket, limit_s: float) -> int:
    """Side b: echo until a says bye, or is quiet for IDLE_S once the echoes began (its byes may all be
    lost in the tunnel), or the time is up; how many were echoed."""
    sock.settimeout(max(limit_s, 1.0))
    echoed = 0
    while True:
        try:
            data, source = sock.recvfrom(2048)
        except (TimeoutError, socket.timeout):
            return echoed
        if data == BYE:
            return echoed
        sock.sendto(data, source)
        echoed += 1
        sock.settimeout(IDLE_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7654, help="the supernode's port (its -l)")
    parser.add_argument("--key", default="natlab", help="the community's key")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped at the duration: the edge goes too
    side, pair = os.environ["NATLAB_SIDE"], os.environ["NATLAB_PAIR"]
    mine, theirs = tunnel_ip(pair, side), tunnel_ip(pair, "b" if side == "a" else "a")
    edge = subprocess.Popen(["edge", "-d", "n2n0", "-a", mine, "-c", f"natlab{pair}", "-k", args.key,
                             "-l", f"{os.environ['NATLAB_WAN']}:{args.port}"])
    try:
        wait_for_address("n2n0", mine)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((mine, PORT))
            if side == "b":
                echoed = echo(sock, float(os.environ.get("NATLAB_DURATION", "30")))
                print(f"echoed {echoed} datagrams through the tunnel")
                return 0 if echoed >= ECHOES // 2 else 1
            time.sleep(1.0)  # b's socket is bound by now
            rtts = ping(sock, theirs)
        answered = [r for r in rtts if r is not None]
        Path(os.environ["NATLAB_OUT"], "rtt.json").write_text(json.dumps(rtts) + "\n")
        print(f"{len(answered)}/{ECHOES} echoes came back through the tunnel"
              + (f", median rtt {sorted(answered)[len(answered) // 2]} ms" if answered else ""))
        return 0 if len(answered) >= ECHOES // 2 else 1
    finally:
        edge.terminate()
        edge.wait(5)


if __name__ == "__main__":
    sys.exit(main())
