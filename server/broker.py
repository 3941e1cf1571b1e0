"""The rendezvous broker: a UDP service that introduces peers to each other.

`python3 -m server.broker` is the broker node's main process. All decisions are made by
server.rendezvous.Rendezvous; this module only moves datagrams and logs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from lab import nodeenv
from lab.proto import Endpoint
from server.rendezvous import Rendezvous

log = logging.getLogger("broker")


class BrokerProtocol(asyncio.DatagramProtocol):
    def __init__(self, rendezvous: Rendezvous) -> None:
        self.rendezvous = rendezvous
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        for payload, dest in self.rendezvous.handle(data, Endpoint(addr[0], addr[1])):
            self.transport.sendto(payload, dest.to_tuple())

    def error_received(self, exc: Exception) -> None:
        log.warning("socket error: %s", exc)


async def serve(host: str, port: int, ttl: float, ready: bool = True) -> None:
    loop = asyncio.get_running_loop()
    rendezvous = Rendezvous(ttl=ttl)
    transport, _ = await loop.create_datagram_endpoint(lambda: BrokerProtocol(rendezvous), local_addr=(host, port))
    log.info("listening on udp %s:%d (registration ttl %.0fs)", host, port, ttl)
    if ready:
        nodeenv.mark_ready()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=ttl / 4)
        except asyncio.TimeoutError:
            rendezvous.expire()
    transport.close()
    log.info("stopping: %s", rendezvous.stats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="server.broker", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=3478)
    parser.add_argument("--ttl", type=float, default=60.0, help="seconds a silent registration is kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s.%(msecs)03d %(name)s %(message)s", datefmt="%H:%M:%S")
    nodeenv.prepare(nodeenv.settings_from_env())
    asyncio.run(serve(args.host, args.port, args.ttl))


if __name__ == "__main__":
    main()
