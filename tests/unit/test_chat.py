"""The chat: its line protocol without sockets, then two real chats through a loopback broker.

The second part runs `python -m peers.chat` twice under pseudo-terminals (pexpect), as a person
would in two terminals, against a broker on 127.0.0.1: every address involved is 127.0.0.1.
"""

from __future__ import annotations

import sys

import pexpect
import pytest

from peers.chat import MAX_TRIES, RETRY_S, ChatSession, Terminal, chunks
from tests.helpers.chat_sides import close_all, end_together
from tests.helpers.loopback import ENV, ROOT, LoopbackBroker
from wire.protocol import MAX_TEXT, Ack, Bye, Data


def session() -> ChatSession:
    return ChatSession("r", "a", "b")


def test_a_line_is_sent_until_acknowledged_then_never_again():
    s = session()
    s.type_line("hello", now=0.0)
    assert s.due(0.0) == [Data("r", "a", 1, "hello")]
    assert s.due(0.1) == []  # not yet time to retry
    assert s.due(RETRY_S) == [Data("r", "a", 1, "hello")]
    s.received(Ack("r", "b", 1))
    assert s.due(10.0) == [] and s.next_due() is None


def test_a_line_never_acknowledged_is_given_up_and_counted():
    s = session()
    s.type_line("lost", now=0.0)
    sends = sum(len(s.due(t * RETRY_S)) for t in range(MAX_TRIES + 5))
    assert sends == MAX_TRIES and s.undelivered == 1 and not s.pending


def test_received_lines_are_acknowledged_every_time_and_shown_once():
    s = session()
    assert s.received(Data("r", "b", 1, "hi")) == ([Ack("r", "a", 1)], ["b> hi"])
    assert s.received(Data("r", "b", 1, "hi")) == ([Ack("r", "a", 1)], [])


def test_long_lines_go_as_several_messages_in_order():
    s = session()
    s.type_line("x" * (MAX_TEXT * 2 + 1), now=0.0)
    assert [len(m.text) for m in s.due(0.0)] == [MAX_TEXT, MAX_TEXT, 1]
    assert chunks("") == [""]


def test_leaving_sends_a_bye_and_ends_once_it_is_acknowledged():
    s = session()
    s.leave(now=0.0)
    [bye] = s.due(0.0)
    assert isinstance(bye, Bye) and not s.finished
    s.received(Ack("r", "b", bye.seq))
    assert s.finished


def test_the_partners_bye_ends_the_session():
    s = session()
    acks, shown = s.received(Bye("r", "b", 4))
    assert acks == [Ack("r", "a", 4)] and shown == [] and s.finished and s.partner_left


def test_the_terminal_reader_splits_lines_and_keeps_a_last_unfinished_one(tmp_path):
    import os

    r, w = os.pipe()
    term = Terminal(r)
    os.write(w, b"one\ntw")
    assert term.read_lines() == ["one"]
    os.write(w, "o\r\nthrée".encode())
    assert term.read_lines() == ["two"]
    os.close(w)
    assert term.read_lines() == ["thrée"] and term.closed
    os.close(r)


# -- two chats through a loopback broker, under pseudo-terminals -----------------------------------
def spawn_chat(broker: LoopbackBroker, peer: str) -> pexpect.spawn:
    args = ["-m", "peers.chat", "--broker", str(broker.endpoint), "--room", "chat", "--id", peer,
            "--secret", broker.secret("chat"), "--wait", "20"]
    return pexpect.spawn(sys.executable, args, cwd=str(ROOT), env=ENV, encoding="utf-8", timeout=15)


@pytest.fixture
def broker(tmp_path):
    b = LoopbackBroker(tmp_path / "broker")
    yield b
    b.stop()


def test_two_chats_exchange_lines_both_ways_and_ctrl_d_ends_both(broker):
    a = spawn_chat(broker, "a")
    a.expect_exact("waiting for your partner")
    a.sendline("typed before b arrived")
    b = spawn_chat(broker, "b")
    try:
        for side, other in ((a, "b"), (b, "a")):
            side.expect_exact(f"found {other}: public endpoint 127.0.0.1:")
            side.expect(r"connected to \w over its public endpoint 127\.0\.0\.1:\d+")
        b.expect_exact("a> typed before b arrived")
        for i in range(3):
            a.sendline(f"line {i} from a")
            b.sendline(f"line {i} from b ünïcode")
        for i in range(3):
            b.expect_exact(f"a> line {i} from a")
            a.expect_exact(f"b> line {i} from b ünïcode")
        end_together(a, "a", b)
    finally:
        close_all(a, b)
    assert broker.status()["stats"]["rendezvous"]["introductions"] == 1


def test_ctrl_c_ends_both_sides_too(broker):
    a, b = spawn_chat(broker, "a"), spawn_chat(broker, "b")
    try:
        for side in (a, b):
            side.expect("connected to")
        end_together(b, "b", a, how=pexpect.spawn.sendintr)
    finally:
        close_all(a, b)


def test_make_chat_attaches_to_the_peer_with_the_minted_secret_in_its_environment_not_its_argv():
    from lab.experiment.chat_attach import chat_argv, chat_environment
    from lab.topology import build_topology

    argv = chat_argv(build_topology(), "b", "chat")
    assert argv[:5] == ["docker", "exec", "-it", "-e", "NATLAB_ROOM_SECRET"]  # docker takes the value from its env
    assert chat_environment("ab" * 32)["NATLAB_ROOM_SECRET"] == "ab" * 32
    assert argv[5:] == ["natlab-peer-b", "python3", "-m", "peers.chat", "--broker", "198.51.100.10:3478",
                        "--room", "chat", "--id", "b"]
