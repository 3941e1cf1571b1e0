"""The link's userspace stage: every packet queued to it waits its delay (± jitter), then goes on.

The kernel has no netem here (see node/link_rules.py for what stays in the kernel: loss, rate, duplication), so
what needs time is done in userspace: the kernel queues the packet (NFQUEUE, before conntrack sees
it) and the stage gives its verdict when the packet's time has come. Verdicts go in any order, so
jitter reorders packets as a real link does; `reorder` lets some through at once, ahead of the rest;
`corrupt` flips one bit of a packet's payload, which its receiver's checksum then drops.

The stage runs in a thread of the node's main program (router or broker) and takes a new condition
from its control socket (`python3 -m node.link_control set` sends it), at once, and answers when it
holds packets by it.
"""

from __future__ import annotations

import errno
import heapq
import json
import random
import select
import socket
import threading
import time
import traceback
from pathlib import Path

from node.link import LinkCondition
from node.link_rules import QUEUE
from node.nfqueue import ACCEPT, NfQueue


class DelaySchedule:
    """When each packet goes: the arithmetic of the stage, apart from sockets (tested alone)."""

    def __init__(self, condition: LinkCondition, rng: random.Random) -> None:
        self.condition, self.rng = condition, rng
        self._held: list[tuple[float, int, int, bytes | None]] = []
        self._count = 0

    def admit(self, now: float, packet_id: int, payload: bytes = b"") -> None:
        c, rng = self.condition, self.rng
        due = now
        if not (c.reorder_pct and rng.random() * 100 < c.reorder_pct):
            due += (c.delay_ms + (rng.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0.0)) / 1000
        changed = None
        if c.corrupt_pct and payload and rng.random() * 100 < c.corrupt_pct:
            changed = corrupted(payload, rng)
        self._count += 1
        heapq.heappush(self._held, (due, self._count, packet_id, changed))

    def next_due(self) -> float | None:
        return self._held[0][0] if self._held else None

    def due(self, now: float) -> list[tuple[int, bytes | None]]:
        """The packets whose time has come, in the order they leave: (id, replaced payload or None)."""
        out = []
        while self._held and self._held[0][0] <= now:
            _, _, packet_id, payload = heapq.heappop(self._held)
            out.append((packet_id, payload))
        return out

    def __len__(self) -> int:
        return len(self._held)


def corrupted(packet: bytes, rng: random.Random) -> bytes:
    """The packet with one bit flipped past its IPv4 header (the header stays routable)."""
    header = (packet[0] & 0x0F) * 4 if packet else 0
    if len(packet) <= header:
        return packet
    i = rng.randrange(header, len(packet))
    return packet[:i] + bytes([packet[i] ^ (1 << rng.randrange(8))]) + packet[i + 1:]


class LinkStage(threading.Thread):
    """The stage of one node: binds its queue, takes new conditions on its control socket, releases
    packets on time. Idle (no packet held, none coming) it sleeps: a hundred routers cost nothing."""

    def __init__(self, control: Path, seed: int | None = None) -> None:
        super().__init__(name="link-stage", daemon=True)
        self.rng = random.Random(seed)
        self.schedule = DelaySchedule(LinkCondition(), self.rng)
        self.queue = NfQueue(QUEUE, copy_payload=True)  # bound here: the rules may send to it once this returns
        control.unlink(missing_ok=True)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.control.bind(str(control))

    def run(self) -> None:
        try:
            self._run()
        except BaseException:  # noqa: BLE001 - the node's log says why its link stopped
            traceback.print_exc()
            raise
        finally:
            self.queue.close()
            self.control.close()

    def _take(self) -> None:
        """A new condition from the control socket (packets held keep their time); the reply acknowledges it."""
        data, sender = self.control.recvfrom(65536)
        try:
            request = json.loads(data)
            if "condition" in request:  # else a question: which condition is in force
                self.schedule.condition = LinkCondition.from_json(request["condition"])
            reply = {"ok": True, "condition": self.schedule.condition.to_json()}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        if sender:
            self.control.sendto(json.dumps(reply).encode(), sender)

    def _run(self) -> None:
        schedule = self.schedule
        while True:
            due = schedule.next_due()
            wait = None if due is None else max(0.0, due - time.monotonic())
            readable, _, _ = select.select([self.queue, self.control], [], [], wait)
            now = time.monotonic()
            if self.control in readable:
                self._take()
            if self.queue in readable:
                try:
                    for packet in self.queue.read():
                        schedule.admit(now, packet.id, packet.payload)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:  # the kernel had more than the socket holds: those are lost
                        raise
            for packet_id, payload in schedule.due(time.monotonic()):
                self.queue.verdict(packet_id, ACCEPT, payload)


def tell(control: Path, condition: LinkCondition | None, timeout_s: float = 5.0) -> LinkCondition:
    """Hand the stage at `control` a new condition (None: only ask); the condition in force once it holds by it."""
    request = {} if condition is None else {"condition": condition.to_json()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("")  # an address of our own (abstract), for the reply
        sock.settimeout(timeout_s)
        sock.sendto(json.dumps(request).encode(), str(control))
        reply = json.loads(sock.recv(65536))
    if not reply.get("ok"):
        raise ValueError(f"the link stage refused the condition: {reply.get('error')}")
    return LinkCondition.from_json(reply["condition"])
