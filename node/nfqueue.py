"""A netfilter queue (NFQUEUE) client: the kernel hands queued packets over and waits for a verdict.

iptables' NFQUEUE target (the nft `queue` statement is not in every kernel, this machine's
included) sends a packet to a queue; the program bound to it answers with a verdict per packet
id, in any order and at any time, which is how a link stage holds packets back. The protocol is
nfnetlink_queue over a netlink socket; this is the handful of its messages a stage needs, with
the standard library only, since the node image gets no Python package beyond Debian's (none
packages an NFQUEUE binding). Queues belong to the network namespace the socket is made in.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_VERDICT, MSG_CONFIG = 0, 1, 2
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN = 1, 2, 3
CMD_BIND, CMD_UNBIND = 1, 2
COPY_META, COPY_PACKET = 1, 2
ATTR_PACKET_HDR, ATTR_VERDICT_HDR, ATTR_PAYLOAD = 1, 2, 10
DROP, ACCEPT = 0, 1
NLMSG = struct.Struct("=IHHII")
NFGEN = struct.Struct("=BBH")  # family, version, queue number (big-endian, packed by hand)
ATTR = struct.Struct("=HH")


class QueueError(OSError):
    """The kernel refused a queue request (bound by another program, no permission, ...)."""


@dataclass(frozen=True)
class Queued:
    """A packet the kernel holds until its verdict: its id, and its bytes if the copy mode asked for them."""

    id: int
    payload: bytes = b""


def attribute(kind: int, payload: bytes) -> bytes:
    length = ATTR.size + len(payload)
    return ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def attributes(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, i)
        if length < ATTR.size:
            break
        out[kind & 0x7FFF] = data[i + ATTR.size:i + length]
        i += (length + 3) & ~3
    return out


def message(kind: int, queue: int, attrs: list[bytes], flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return NLMSG.pack(NLMSG.size + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def verdict_message(queue: int, packet_id: int, verdict: int, payload: bytes | None = None) -> bytes:
    attrs = [attribute(ATTR_VERDICT_HDR, struct.pack(">II", verdict, packet_id))]
    if payload is not None:
        attrs.append(attribute(ATTR_PAYLOAD, payload))
    return message(MSG_VERDICT, queue, attrs)


def packets(data: bytes) -> list[Queued]:
    """The queued packets in one read from the socket (a read can hold several messages)."""
    out, i = [], 0
    while i + NLMSG.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG.unpack_from(data, i)
        if length < NLMSG.size:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
            attrs = attributes(data[i + NLMSG.size + NFGEN.size:i + length])
            (packet_id,) = struct.unpack_from(">I", attrs[ATTR_PACKET_HDR])
            out.append(Queued(packet_id, attrs.get(ATTR_PAYLOAD, b"")))
        i += (length + 3) & ~3
    return out


class NfQueue:
    """One bound queue: read the packets it holds, give each its verdict."""

    def __init__(self, queue: int, copy_payload: bool = False, max_len: int = 10_000) -> None:
        self.queue = queue
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            self.sock.bind((0, 0))
            self._request([attribute(CFG_CMD, struct.pack("=BBH", CMD_BIND, 0, 0))])
            mode, copy_range = (COPY_PACKET, 0xFFFF) if copy_payload else (COPY_META, 0)
            self._request([attribute(CFG_PARAMS, struct.pack(">IB", copy_range, mode)),
                           attribute(CFG_QUEUE_MAXLEN, struct.pack(">I", max_len))])
        except BaseException:
            self.sock.close()
            raise

    def _request(self, attrs: list[bytes]) -> None:
        self.sock.send(message(MSG_CONFIG, self.queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
        reply = self.sock.recv(4096)
        _length, kind, *_ = NLMSG.unpack_from(reply)
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", reply, NLMSG.size)
            if error:
                raise QueueError(-error, f"NFQUEUE {self.queue}: the kernel refused the configuration")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[Queued]:
        return packets(self.sock.recv(1 << 20))

    def verdict(self, packet_id: int, verdict: int, payload: bytes | None = None) -> None:
        self.sock.send(verdict_message(self.queue, packet_id, verdict, payload))

    def close(self) -> None:
        try:
            self.sock.send(message(MSG_CONFIG, self.queue, [attribute(CFG_CMD, struct.pack("=BBH", CMD_UNBIND, 0, 0))]))
        except OSError:
            pass
        self.sock.close()
