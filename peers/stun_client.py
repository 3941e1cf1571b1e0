"""A STUN Binding client over one UDP socket: the requests of RFC 5780 discovery and of port prediction.

The socket may be one the caller keeps using (the peer's own, whose NAT mappings are the point):
datagrams that are not the awaited answer are read and dropped while waiting, which is harmless
before the peer has registered, when nothing else is due to it.
"""

from __future__ import annotations

import select
import socket
import time
from collections import OrderedDict

from wire import stun
from wire.protocol import Endpoint

WAIT = 0.4  # seconds to wait for one answer
TRIES = 3


class StunSocket:
    def __init__(self, local_ip: str = "", sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((local_ip, 0))
        self.sock = sock

    @property
    def local(self) -> Endpoint:
        return Endpoint(*self.sock.getsockname())

    def send_request(self, to: Endpoint, change: int = 0, response_port: int | None = None) -> bytes:
        attrs: OrderedDict = OrderedDict()
        if change:
            attrs["CHANGE-REQUEST"] = change
        if response_port is not None:
            attrs["RESPONSE-PORT"] = response_port
        msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=attrs)
        self.sock.sendto(stun.encode(msg), to.to_tuple())
        return msg.transaction_id

    def wait_for(self, txn: bytes, seconds: float, klass: stun.Class = stun.Class.RESPONSE) -> stun.Message | None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], remaining)[0]:
                return None
            data, _ = self.sock.recvfrom(2048)
            try:
                msg = stun.decode(data)
            except stun.StunError:
                continue
            if msg.transaction_id == txn and msg.message_class == klass:
                return msg
        return None

    def binding(self, to: Endpoint, change: int = 0, wait: float = WAIT, tries: int = TRIES,
                backoff: float = 1.0) -> stun.Message | None:
        """The answer to a Binding request, sent up to `tries` times, the wait growing by `backoff` each time."""
        for attempt in range(tries):
            answer = self.wait_for(self.send_request(to, change), wait * backoff ** attempt)
            if answer is not None:
                return answer
        return None

    def close(self) -> None:
        self.sock.close()


def mapped(msg: stun.Message) -> Endpoint:
    return Endpoint(*msg.attributes["XOR-MAPPED-ADDRESS"])
