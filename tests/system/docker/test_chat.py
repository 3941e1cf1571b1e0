"""System test: `make chat-a` / `make chat-b` as two people would use them, under pseudo-terminals.

Each side is `docker exec -it natlab-peer-X python3 -m peers.chat ...` (lab.experiment.chat_attach builds
the command, as the make targets do) run under a pty on the host with pexpect, while the lab
captures. Lines typed on either side appear on the other; Ctrl-D on one side ends both; the
broker's capture holds none of the lines (they went peer to peer). Marker: docker (root).
"""

from __future__ import annotations

import time
import uuid

import pexpect
import pytest

from lab.analysis.packets import load
from lab.experiment.captures import Captures
from lab.experiment.chat_attach import chat_argv, chat_environment
from lab.experiment.room_secrets import mint
from tests.helpers.chat_sides import close_all, end_together
from tests.helpers.labs import needs_root
from wire.protocol import Data

pytestmark = [needs_root]


def spawn(engine, label: str, room: str, secret: str) -> pexpect.spawn:
    argv = chat_argv(engine.topology, label, room)
    return pexpect.spawn(argv[0], argv[1:], env=chat_environment(secret), encoding="utf-8", timeout=30)


def test_two_chats_talk_directly_and_end_together(engine, tmp_path):
    if getattr(engine, "name", "docker") != "docker":
        pytest.skip("make chat-* attaches with docker exec -it")
    room = f"chat-{time.time_ns()}"
    secret = mint(engine, room)
    token = uuid.uuid4().hex[:12]  # marks every line, to look for in the captures
    lines = {"a": [f"{token} hello from a #{i}" for i in range(3)], "b": [f"{token} and from b #{i}" for i in range(3)]}
    topo = engine.topology
    captures = Captures(engine)
    captures.start()
    a = b = None
    try:
        a = spawn(engine, "a", room, secret)
        a.expect_exact("waiting for your partner")
        b = spawn(engine, "b", room, secret)
        for side, other in ((a, topo.pair("b")), (b, topo.pair("a"))):
            side.expect_exact(f"found {other.label}: public endpoint {other.public_ip}:")
            side.expect(rf"connected to {other.label} over its public endpoint {other.public_ip}:\d+")
        for first, second in zip(lines["a"], lines["b"]):
            a.sendline(first)
            b.sendline(second)
        for line in lines["a"]:
            b.expect_exact(f"a> {line}")
        for line in lines["b"]:
            a.expect_exact(f"b> {line}")
        end_together(a, "a", b)
    finally:
        close_all(a, b)
        time.sleep(0.3)
        captures.stop_and_collect(tmp_path)
    at_broker = [p for p in load(tmp_path / "broker-wan.pcap") if token.encode() in p.payload]
    assert at_broker == [], f"{len(at_broker)} chat datagrams reached the broker"
    for label in ("a", "b"):
        pair = topo.pair(label)
        on_wan = {p.msg.text for p in load(tmp_path / f"{pair.router.name}-wan.pcap")
                  if isinstance(p.msg, Data) and token in p.msg.text and p.src == str(pair.public_ip)}
        assert on_wan == set(lines[label]), f"{label}'s lines on {pair.router.name}-wan: {on_wan}"
