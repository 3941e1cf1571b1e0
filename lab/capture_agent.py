"""Packet capture inside a node: one scapy sniffer per interface, one pcap file per vantage point.

    python3 -m lab.capture_agent --dir /tmp/natlab-capture

Runs in the node (started by the engine), names each file <node>-<side>.pcap after the
interface's side in NATLAB_ADDRESSES, writes READY once every sniffer's socket is open, and on
SIGTERM/SIGINT stops, flushes and writes DONE. Kernel timestamps, full packets, both directions.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from lab import nodeenv

READY = "READY"
DONE = "DONE"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lab.capture_agent", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="where the pcaps are written")
    args = parser.parse_args(argv)

    from scapy.sendrecv import AsyncSniffer
    from scapy.utils import PcapWriter

    settings = nodeenv.settings_from_env()
    args.dir.mkdir(parents=True, exist_ok=True)
    for marker in (READY, DONE):
        (args.dir / marker).unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    sniffers, writers = [], []
    for side, address in settings.addresses.items():
        iface = nodeenv.interface_for(address)
        writer = PcapWriter(str(args.dir / f"{settings.name}-{side}.pcap"), linktype=1, nano=True)
        writer.write_header(None)  # a vantage point that saw nothing still yields a valid pcap
        started = threading.Event()
        sniffer = AsyncSniffer(iface=iface, prn=writer.write, store=False, started_callback=started.set)
        sniffer.start()
        sniffers.append((sniffer, started))
        writers.append(writer)
    for sniffer, started in sniffers:
        if not started.wait(20):
            raise SystemExit("capture: a sniffer did not start within 20 s")
    (args.dir / READY).write_text("ready\n")
    stop.wait()
    for sniffer, _ in sniffers:
        sniffer.stop()
    for writer in writers:
        writer.close()
    (args.dir / DONE).write_text("done\n")


if __name__ == "__main__":
    main()
