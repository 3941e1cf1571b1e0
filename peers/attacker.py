"""A third host that wants in: joins without the secret, replays a register, spoofs a partner.

    python3 -m peers.attacker join   --broker 198.51.100.10:3478 --room R
    python3 -m peers.attacker replay --broker 198.51.100.10:3478 --payload <hex of a captured register>
    python3 -m peers.attacker spoof  --to 198.51.100.101:4000 --as 198.51.100.102:5000 --room R --sender b

join: registers as each of --peers (a, b and c: replace a member, or be a third) unsigned and
signed with a key of its own, --count times each. replay: sends a captured datagram as it is.
Both report what came back, by message type and error code: an attacker that is refused gets
errors (or nothing), never a waiting or an introduction. spoof: sends probes and data that
claim to come from the partner (--as, the partner's public endpoint, put in the IP header
through a raw socket) to a peer's public endpoint, signed with a session key of its own, for
--seconds; only the addresses given are ever sent to. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time
from collections import Counter

from wire.auth import RoomKeys, new_nonce, sign
from wire.protocol import Data, Endpoint, Error, Probe, Register, encode, try_decode

WAIT_S = 0.5


def _answers(sock: socket.socket, until: float) -> Counter:
    got: Counter = Counter()
    while (remaining := until - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        msg = try_decode(data)
        got[f"error:{msg.code}" if isinstance(msg, Error) else msg.TYPE if msg else "other"] += 1
    return got


def join(broker: Endpoint, room: str, peers: list[str], count: int) -> dict:
    """Register as each peer without the room secret (unsigned, and under a key of our own)."""
    own = RoomKeys.from_secret(os.urandom(32))
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        private = Endpoint(sock.getsockname()[0] if sock.getsockname()[0] != "0.0.0.0" else "192.0.2.66",
                           sock.getsockname()[1])
        for _ in range(count):
            for peer in peers:
                reg = Register(room, peer, "attacker", private, int(time.time()), new_nonce())
                for attempt in (reg, sign(reg, own.to_broker)):
                    sock.sendto(encode(attempt), broker.to_tuple())
                    sent += 1
            time.sleep(0.05)
        got = _answers(sock, time.monotonic() + WAIT_S)
    return {"attack": "join", "room": room, "sent": sent, "answers": dict(got),
            "admitted": got["waiting"] + got["intro"]}


def replay(broker: Endpoint, payload: bytes, count: int) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(count):
            sock.sendto(payload, broker.to_tuple())
            time.sleep(0.05)
        got = _answers(sock, time.monotonic() + WAIT_S)
    return {"attack": "replay", "sent": count, "answers": dict(got), "admitted": got["waiting"] + got["intro"]}


def udp_packet(src: Endpoint, dst: Endpoint, payload: bytes) -> bytes:
    """An IPv4 + UDP packet with the source we choose (the kernel fills the IP checksum and id)."""
    udp = struct.pack("!HHHH", src.port, dst.port, 8 + len(payload), 0) + payload  # no UDP checksum (IPv4)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src.ip), socket.inet_aton(dst.ip))
    return ip + udp


def spoof(targets: list[tuple[Endpoint, Endpoint, str]], room: str, seconds: float, rate: float) -> dict:
    """Probes and data claiming to be the partner: (target, spoofed source, partner's name) each."""
    key = RoomKeys.from_secret(os.urandom(32)).session(new_nonce(32))
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        deadline = time.monotonic() + seconds
        seq = 1
        while time.monotonic() < deadline:
            for to, as_, sender in targets:
                for msg in (Probe(room, sender, 10_000 + seq, True), Data(room, sender, seq, f"forged #{seq}")):
                    raw.sendto(udp_packet(as_, to, encode(sign(msg, key))), (to.ip, 0))
                    sent += 1
            seq += 1
            time.sleep(1 / rate)
    return {"attack": "spoof", "targets": [f"{a} as {n} -> {t}" for t, a, n in targets], "sent": sent}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.attacker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    j = sub.add_parser("join", help="register without the room secret")
    j.add_argument("--broker", required=True)
    j.add_argument("--room", required=True)
    j.add_argument("--peers", default="a,b,c")
    j.add_argument("--count", type=int, default=3)
    r = sub.add_parser("replay", help="send a captured datagram again")
    r.add_argument("--broker", required=True)
    r.add_argument("--payload", required=True, help="the datagram, hex")
    r.add_argument("--count", type=int, default=3)
    s = sub.add_parser("spoof", help="probes and data as the partner, to a peer's public endpoint")
    s.add_argument("--to", action="append", required=True, help="a peer's public IP:PORT (repeatable)")
    s.add_argument("--as", dest="as_", action="append", required=True, help="the source to claim, per --to")
    s.add_argument("--room", required=True)
    s.add_argument("--sender", action="append", required=True, help="the partner's name, per --to")
    s.add_argument("--seconds", type=float, default=5.0)
    s.add_argument("--rate", type=float, default=200.0, help="rounds per second")
    args = parser.parse_args(argv)
    if args.command == "join":
        out = join(Endpoint.parse(args.broker), args.room, args.peers.split(","), min(args.count, 100))
    elif args.command == "replay":
        out = replay(Endpoint.parse(args.broker), bytes.fromhex(args.payload), min(args.count, 100))
    else:
        if not len(args.to) == len(args.as_) == len(args.sender):
            parser.error("give one --as and one --sender per --to")
        targets = [(Endpoint.parse(t), Endpoint.parse(a), n) for t, a, n in zip(args.to, args.as_, args.sender)]
        out = spoof(targets, args.room, min(args.seconds, 60), min(args.rate, 2000))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
