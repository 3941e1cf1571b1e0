"""A TCP relay on the WAN host and two peers that talk through it: `make run` recipe for TCP.

    make run A='python3 tcp_relay.py' B='python3 tcp_relay.py' WAN='python3 tcp_relay.py' EXPECT=relayed

The WAN side (NATLAB_SIDE=wan) listens on PORT and joins connections two by two, by the pair
number each one sends first, piping bytes both ways as they come: the way a relay server of a P2P
stack carries a pair that cannot reach each other. Each peer connects to it (NATLAB_WAN), says
its pair, then a sends LINES numbered lines and b echoes each; both exit 0 once every line came
back. No NAT traversal here: the pcaps show TCP relayed through the WAN host.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

PORT = 9000
LINES = 50
HELLO = 16  # bytes: the pair number, padded


def pipe(src: socket.socket, dst: socket.socket) -> None:
    while data := src.recv(65536):
        dst.sendall(data)
    dst.shutdown(socket.SHUT_WR)


def relay() -> int:
    """Join connections by the pair they name, two by two, until stopped."""
    waiting: dict[bytes, socket.socket] = {}
    with socket.create_server(("0.0.0.0", PORT), reuse_port=True) as server:
        while True:
            conn, _ = server.accept()
            hello = b""
            while len(hello) < HELLO and (chunk := conn.recv(HELLO - len(hello))):
                hello += chunk
            pair = hello.split(b"\n")[0]
            other = waiting.pop(pair, None)
            if other is None:
                waiting[pair] = conn
                continue
            for a, b in ((conn, other), (other, conn)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def peer(side: str) -> int:
    with socket.create_connection((os.environ["NATLAB_WAN"], PORT), timeout=20) as sock:
        sock.sendall(f"{os.environ['NATLAB_PAIR']}\n".ljust(HELLO).encode())  # a fixed-size hello
        lines = sock.makefile("rwb")
        for seq in range(LINES):
            if side == "a":
                lines.write(f"line {seq} from a\n".encode())
                lines.flush()
                if lines.readline() != f"echo line {seq} from a\n".encode():
                    print(f"line {seq}: no echo")
                    return 1
            else:
                got = lines.readline()
                lines.write(b"echo " + got)
                lines.flush()
    print(f"{side}: {LINES} lines {'echoed back' if side == 'a' else 'echoed'} through the relay")
    return 0


if __name__ == "__main__":
    side = os.environ["NATLAB_SIDE"]
    sys.exit(relay() if side == "wan" else peer(side))
