"""Junk for the broker: a bounded flood of malformed and mutated datagrams, to one address only.

    python3 -m peers.flood --to 198.51.100.10:3478 --count 100000 --rate 20000 --max-seconds 60

Sends `count` datagrams (fewer if `max-seconds` runs out first) at about `rate` a second to the
one endpoint given (and, with --also-port, to the same address on another port), and never
anywhere else. The mix, reproducible from --seed: random bytes of every length up to past the
broker's size limit; text that starts like the lab's JSON; lab messages of every type with
random fields; registers signed with a wrong key, then bit-flipped, cut short or stretched;
STUN headers with lying lengths and random attributes; real Binding requests mutated. Replies
are counted, with their bytes, so the run says how much the broker answered (amplification).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Iterator

from wire import stun
from wire.auth import RoomKeys, sign
from wire.protocol import MAX_DATAGRAM, MESSAGE_TYPES, VERSION, Endpoint, Register, encode

KINDS = ("random", "json-ish", "lab-fields", "bad-register", "stun-header", "stun-mutated")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One of: flip a few bits, cut short, repeat a slice, insert random bytes."""
    buf = bytearray(data)
    how = rng.randrange(4)
    if how == 0 and buf:
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif how == 1:
        del buf[rng.randrange(len(buf) + 1):]
    elif how == 2 and buf:
        i = rng.randrange(len(buf))
        buf[i:i] = buf[i:i + rng.randint(1, 64)] * rng.randint(1, 20)
    else:
        i = rng.randrange(len(buf) + 1)
        buf[i:i] = rng.randbytes(rng.randint(1, 32))
    return bytes(buf)


def _value(rng: random.Random) -> object:
    return rng.choice([rng.randint(-5, 2**60), rng.random(), True, None, "", "x" * rng.randint(1, 300),
                       "10.0.1.10:40000", "ab" * 16, "\n\u202e", [1, [2]], {"a": 1}])


def _lab_fields(rng: random.Random) -> bytes:
    kind = rng.choice([*MESSAGE_TYPES, "nope"])
    body = {"natlab": rng.choice([VERSION, VERSION, 1, "2"]), "type": kind}
    names = ["room", "peer", "txn", "private", "ts", "nonce", "mac", "seq", "tag", "ack", "text", "you", "extra"]
    for name in rng.sample(names, rng.randint(0, len(names))):
        body[name] = _value(rng)
    return json.dumps(body).encode()


def _bad_register(rng: random.Random) -> bytes:
    keys = RoomKeys.from_secret(rng.randbytes(32))
    msg = Register(f"room{rng.randrange(50)}", rng.choice("abc"), "t", Endpoint("10.0.1.10", 40000),
                   int(time.time()), rng.randbytes(8).hex())
    data = encode(sign(msg, keys.to_broker))
    return data if rng.random() < 0.3 else mutate(rng, data)


def _stun_header(rng: random.Random) -> bytes:
    attrs = b"".join(struct.pack("!HH", rng.randrange(65536), rng.choice([0, 4, 8, 65535, rng.randrange(300)]))
                     + rng.randbytes(rng.randrange(12)) for _ in range(rng.randrange(6)))
    length = rng.choice([len(attrs), rng.randrange(65536)])
    cookie = rng.choice([struct.pack("!I", stun.COOKIE), rng.randbytes(4)])
    return struct.pack("!HH", rng.randrange(0x4000), length) + cookie + rng.randbytes(12) + attrs


def _stun_mutated(rng: random.Random) -> bytes:
    attrs: OrderedDict = OrderedDict()
    if rng.random() < 0.5:
        attrs["CHANGE-REQUEST"] = rng.choice([0, 2, 4, 6])
    msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=attrs)
    return mutate(rng, stun.encode(msg, fingerprint=rng.random() < 0.5))


def junk(seed: int) -> Iterator[bytes]:
    """An endless, reproducible stream of hostile datagrams (each at most a little over MAX_DATAGRAM)."""
    rng = random.Random(seed)
    makers = {
        "random": lambda: rng.randbytes(rng.choice([0, 1, 3, 19, 20, 21, rng.randrange(MAX_DATAGRAM + 200)])),
        "json-ish": lambda: b"{" + mutate(rng, b'"natlab":2,"type":"register","room":"r"}'),
        "lab-fields": lambda: _lab_fields(rng),
        "bad-register": lambda: _bad_register(rng),
        "stun-header": lambda: _stun_header(rng),
        "stun-mutated": lambda: _stun_mutated(rng),
    }
    while True:
        yield makers[rng.choice(KINDS)]()[: MAX_DATAGRAM + 200]


def flood(to: Endpoint, count: int, rate: float, max_seconds: float, seed: int = 1,
          also_port: int | None = None) -> dict:
    """Send the junk; count what was sent and what came back."""
    targets = [to.to_tuple()] + ([(to.ip, also_port)] if also_port else [])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent = sent_bytes = replies = reply_bytes = errors = 0
    start = time.monotonic()
    stream = junk(seed)
    try:
        while sent < count and (elapsed := time.monotonic() - start) < max_seconds:
            if sent > rate * elapsed:  # ahead of the rate: wait for it, reading replies meanwhile
                time.sleep(min(0.005, sent / rate - elapsed))
            else:
                data = next(stream)
                try:
                    sock.sendto(data, targets[sent % len(targets)])
                    sent_bytes += len(data)
                except (BlockingIOError, OSError):
                    errors += 1
                sent += 1
            while True:
                try:
                    reply = sock.recv(65536)
                except (BlockingIOError, OSError):
                    break
                replies += 1
                reply_bytes += len(reply)
        time.sleep(0.3)  # the last answers
        while True:
            try:
                reply_bytes += len(sock.recv(65536))
                replies += 1
            except (BlockingIOError, OSError):
                break
    finally:
        sock.close()
    seconds = time.monotonic() - start
    return {"to": str(to), "also_port": also_port, "sent": sent, "sent_bytes": sent_bytes, "send_errors": errors,
            "seconds": round(seconds, 2), "rate": round(sent / seconds) if seconds else 0, "replies": replies,
            "reply_bytes": reply_bytes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.flood", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, help="the broker's IP:PORT, the only address sent to")
    parser.add_argument("--also-port", type=int, help="also the same address on this port (e.g. the alternate)")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20_000, help="datagrams per second")
    parser.add_argument("--max-seconds", type=float, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0 < args.count <= 10_000_000 or not 0 < args.rate or not 0 < args.max_seconds <= 3600:
        parser.error("count, rate and max-seconds must be positive and bounded (10M datagrams, 1 hour)")
    print(json.dumps(flood(Endpoint.parse(args.to), args.count, args.rate, args.max_seconds, args.seed,
                           args.also_port)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
