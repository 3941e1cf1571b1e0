"""Packet capture: one loop over the sockets of a set of vantage points, one pcap file per vantage point.

    python3 -m node.capture_agent --dir DIR --vantage router-a-wan@198.51.100.101 ...
    python3 -m node.capture_agent --dir DIR --vantage router-a-wan=/run/netns/natlab-router-a:eth0 ...

The host names every vantage point (the pcap is <NAME>.pcap) and says where it is: NAME@ADDRESS is
the interface holding ADDRESS in the agent's own namespace (the Docker engine runs one agent in
each captured node); NAME=NETNS_PATH:IFACE an interface of another network namespace, the socket
opened inside it (the netns engine runs one agent for the whole lab: one Python process with
scapy instead of hundreds). Writes PID at start, READY once every socket is open, and on
SIGTERM/SIGINT drains what the kernel still holds, flushes and writes DONE. Kernel timestamps,
full packets, both directions, written as they came (plain packet sockets; scapy writes the
pcaps; nothing is dissected).

What proves each capture whole: before READY the agent sends a start marker out of every
interface it captures, and on the stop signal an end marker (wire.capture_marker), each seen by
its own capture like any frame; then it asks the kernel what each socket dropped
(PACKET_STATISTICS) and writes STATS (JSON, before DONE): per vantage point the frames written,
the kernel's count and drops, and the markers seen; and when the capture started and stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from node.network import interface_for
from wire.capture_marker import END, ETHERTYPE, START, marker_frame, parse_marker

READY = "READY"
DONE = "DONE"
PID = "PID"
STATS = "STATS"
END_WAIT_S = 1.0  # how long the agent waits, on stopping, for its end markers to come round
POLL_S = 0.2  # how often the capture loop looks for the stop signal
# Opening or closing a packet socket waits for an RCU grace period (~7 ms, synchronize_net in the
# kernel); waiters share grace periods, so a big lab's hundreds of sockets open and close in threads.
SOCKET_THREADS = 32
# Kernel buffer per capture socket. scapy asks for 64 KiB; a busy lab (hundreds of nodes starting
# Pythons at once) outruns one sniffer thread for seconds, and what overflows is lost to the pcap.
SOCKET_BUFFER = 8 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # past net.core.rmem_max: needs CAP_NET_ADMIN
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6  # struct tpacket_stats {tp_packets, tp_drops}; reading it resets it
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # a struct timespec per frame, as ancillary data
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)
SNAPLEN = 65535  # whole frames (the lab's MTU is 1500; offloads may hand the socket more)


@dataclass(frozen=True)
class Vantage:
    name: str  # the pcap's name without .pcap: the host's name for the vantage point
    iface: str
    netns: str | None = None  # a namespace path to open the socket in; None: where the agent runs

    @classmethod
    def parse(cls, text: str) -> Vantage:
        """NAME=NETNS_PATH:IFACE (the netns engine) or NAME@ADDRESS (an interface of this namespace)."""
        if "@" in text and "=" not in text:
            name, _, address = text.partition("@")
            try:
                return cls(name, interface_for(IPv4Address(address)))
            except (ValueError, LookupError) as exc:
                raise argparse.ArgumentTypeError(f"--vantage {text!r}: {exc}") from None
        name, _, where = text.partition("=")
        netns, _, iface = where.rpartition(":")
        if not (name and netns and iface):
            raise argparse.ArgumentTypeError(f"--vantage wants NAME=NETNS_PATH:IFACE or NAME@ADDRESS, not {text!r}")
        return cls(name, iface, netns)


@dataclass
class Tap:
    """One vantage point's capture: its listening socket, a socket to send its markers, its pcap."""

    vantage: Vantage
    listen: socket.socket  # AF_PACKET, every protocol, both directions
    sender: socket.socket
    mac: bytes
    writer: object = None  # scapy's PcapWriter
    written: int = 0
    markers: set[str] = field(default_factory=set)
    marker_errors: list[str] = field(default_factory=list)

    def mark(self, kind: str) -> None:
        try:
            self.sender.send(marker_frame(kind, self.vantage.name, self.mac))
        except OSError as exc:  # an interface gone down: the missing marker tells the verdict
            self.marker_errors.append(f"{kind}: {exc}")

    def kernel_stats(self) -> tuple[int, int]:
        """(frames the kernel had for the socket, of which it dropped), since the socket opened."""
        packets, drops = struct.unpack("II", self.listen.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        return packets, drops

    def stats(self) -> dict:
        packets, drops = self.kernel_stats()
        return {"written": self.written, "kernel_packets": packets, "kernel_drops": drops,
                "markers": sorted(self.markers), "marker_errors": self.marker_errors}


def open_listener(vantage: Vantage) -> socket.socket:
    """The vantage point's capture socket: every frame of the interface, both ways, promiscuous, with the
    kernel's timestamp of each (SO_TIMESTAMPNS). A plain packet socket: scapy's select()s on itself
    when it opens, which fails past descriptor 1023 (a 248-pair lab has a thousand vantage points)."""
    from node.netns import entered

    with entered(vantage.netns) if vantage.netns else nullcontext():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((vantage.iface, ETH_P_ALL))
        # Promiscuous by the interface's index in its own namespace.
        membership = struct.pack("IHH8s", socket.if_nametoindex(vantage.iface), PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)  # capped, still more than 64 KiB
    sock.setblocking(False)
    return sock


def open_sender(vantage: Vantage) -> socket.socket:
    """A socket to send the vantage point's markers out of its interface (protocol 0: it receives nothing)."""
    from node.netns import entered

    with entered(vantage.netns) if vantage.netns else nullcontext():
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sender.bind((vantage.iface, 0))
    return sender


def open_taps(vantages: list[Vantage]) -> list[Tap]:
    """Every vantage point's tap: all the capture sockets first, then the senders (see open_listener).
    Opening or closing a packet socket waits for an RCU grace period: they open in threads."""
    with ThreadPoolExecutor(SOCKET_THREADS) as pool:
        listeners = list(pool.map(open_listener, vantages))
        senders = list(pool.map(open_sender, vantages))
    return [Tap(v, sock, sender, sender.getsockname()[4]) for v, sock, sender in zip(vantages, listeners, senders)]


def record(tap: Tap) -> None:
    """Write the next frame waiting on the tap's socket as it came, with the kernel's timestamp: no
    dissection (but for its own markers), so one agent keeps up with a lab of hundreds of nodes."""
    try:
        frame, ancillary, _flags, _addr = tap.listen.recvmsg(SNAPLEN, TIMESTAMP_SPACE)
    except BlockingIOError:
        return
    sec, nsec = int(time.time()), 0
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", data[:16])
    tap.writer.write_packet(frame, sec=sec, usec=nsec)  # the writer is nanosecond: "usec" holds ns
    tap.written += 1
    if frame[12:14] == ETHERTYPE and (marker := parse_marker(frame)) and marker[1] == tap.vantage.name:
        tap.markers.add(marker[0])


class Readable:
    """Which taps have a frame waiting: poll(2), which, unlike select(), takes descriptors past 1023
    (a big lab's agent holds two sockets and a file per vantage point)."""

    def __init__(self, taps: list[Tap]) -> None:
        self.by_fd = {tap.listen.fileno(): tap for tap in taps}
        self.poller = select.poll()
        for fd in self.by_fd:
            self.poller.register(fd, select.POLLIN)

    def __call__(self, timeout_s: float) -> list[Tap]:
        try:
            return [self.by_fd[fd] for fd, _ in self.poller.poll(int(timeout_s * 1000))]
        except InterruptedError:
            return []


def finish(taps: list[Tap], readable: Readable) -> None:
    """Send the end markers and record until each has come round (END_WAIT_S at most), then drain
    what the kernel still holds: it belongs to the run too."""
    for tap in taps:
        tap.mark(END)
    deadline = time.monotonic() + END_WAIT_S
    while any(END not in t.markers for t in taps) and time.monotonic() < deadline:
        for tap in readable(0.05):
            record(tap)
    while ready := readable(0):
        for tap in ready:
            record(tap)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="node.capture_agent", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where the pcaps are written")
    parser.add_argument("--vantage", type=Vantage.parse, action="append", required=True,
                        help="NAME@ADDRESS or NAME=NETNS_PATH:IFACE; repeatable")
    args = parser.parse_args(argv)

    import logging

    from scapy.utils import PcapWriter

    # scapy names a frame's link type from its table of the interfaces of the namespace it was loaded
    # in, and warns for every other namespace's; the frames are written raw, the type is not used.
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

    args.dir.mkdir(parents=True, exist_ok=True)
    for marker in (READY, DONE):
        (args.dir / marker).unlink(missing_ok=True)
    (args.dir / PID).write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    vantages = args.vantage
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # two sockets and a file per vantage point
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * len(vantages) + 64)), hard))
    taps = open_taps(vantages)
    for tap in taps:
        tap.writer = PcapWriter(str(args.dir / f"{tap.vantage.name}.pcap"), linktype=1, nano=True)
        tap.writer.write_header(None)  # a vantage point that saw nothing still yields a valid pcap
        tap.mark(START)
    started = time.time()
    (args.dir / READY).write_text("ready\n")
    readable = Readable(taps)
    while not stop.is_set():
        for tap in readable(POLL_S):
            record(tap)
    stopped = time.time()
    finish(taps, readable)
    stats = {"started": started, "stopped": stopped, "vantages": {t.vantage.name: t.stats() for t in taps}}
    with ThreadPoolExecutor(SOCKET_THREADS) as pool:
        list(pool.map(lambda tap: (tap.listen.close(), tap.sender.close()), taps))
    for tap in taps:
        tap.writer.close()
    (args.dir / STATS).write_text(json.dumps(stats) + "\n")
    (args.dir / DONE).write_text("done\n")


if __name__ == "__main__":
    main()
