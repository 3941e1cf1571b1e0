"""Packet capture: one loop over the sockets of a set of vantage points, one pcap file per vantage point.

    python3 -m node.capture_agent --dir DIR --vantage router-a-wan@198.51.100.101 ...
    python3 -m node.capture_agent --dir DIR --vantage router-a-wan=/run/netns/natlab-router-a:eth0 ...

The host names every vantage point (the pcap is <NAME>.pcap) and says where it is: NAME@ADDRESS is
the interface holding ADDRESS in the agent's own namespace (the Docker engine runs one agent in
each captured node); NAME=NETNS_PATH:IFACE an interface of another network namespace, the socket
opened inside it (the netns engine runs one agent for the whole lab: one Python process with
scapy instead of hundreds). Writes PID at start, READY once every socket is open, and on
SIGTERM/SIGINT drains what the kernel still holds, flushes and writes DONE. Kernel timestamps,
full packets, both directions, written as they came (scapy opens the sockets and writes the
pcaps; nothing is dissected).
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from node.network import interface_for

READY = "READY"
DONE = "DONE"
PID = "PID"
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


def open_socket(vantage: Vantage):
    from scapy.arch.linux import L2ListenSocket

    from node.netns import entered

    with entered(vantage.netns) if vantage.netns else nullcontext():
        # Promiscuous by the interface's index in its own namespace: scapy would take it from its
        # table of interfaces, read once in whichever namespace scapy was first imported.
        sock = L2ListenSocket(iface=vantage.iface, promisc=False)
        membership = struct.pack("IHH8s", socket.if_nametoindex(vantage.iface), PACKET_MR_PROMISC, 0, b"")
        sock.ins.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
    try:
        sock.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, SOCKET_BUFFER)
    except OSError:
        sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)  # capped, still more than 64 KiB
    return sock


def record(sock, writer) -> None:
    """Write the next frame waiting on `sock` as it came, with the kernel's timestamp: no dissection,
    so one agent keeps up with a lab of hundreds of nodes."""
    _cls, frame, ts = sock.recv_raw()
    if frame is None:
        return
    ts = time.time() if ts is None else float(ts)
    sec = int(ts)
    writer.write_packet(frame, sec=sec, usec=int(round((ts - sec) * 1e9)))


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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket and a file per vantage point
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * len(vantages) + 64)), hard))
    # Sockets first: they are waited on with select(), which fails on descriptors past 1023.
    with ThreadPoolExecutor(SOCKET_THREADS) as pool:
        sockets = list(pool.map(open_socket, vantages))
    writers = {}
    for sock, vantage in zip(sockets, vantages):
        writer = PcapWriter(str(args.dir / f"{vantage.name}.pcap"), linktype=1, nano=True)
        writer.write_header(None)  # a vantage point that saw nothing still yields a valid pcap
        writers[sock] = writer
    (args.dir / READY).write_text("ready\n")
    while not stop.is_set():
        try:
            ready, _, _ = select.select(sockets, [], [], POLL_S)
        except InterruptedError:
            continue
        for sock in ready:
            record(sock, writers[sock])
    for sock in sockets:  # what the kernel still holds belongs to the run too
        while select.select([sock], [], [], 0)[0]:
            record(sock, writers[sock])
    with ThreadPoolExecutor(SOCKET_THREADS) as pool:
        list(pool.map(lambda sock: sock.close(), sockets))
    for writer in writers.values():
        writer.close()
    (args.dir / DONE).write_text("done\n")


if __name__ == "__main__":
    main()
