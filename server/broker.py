"""The rendezvous broker: introduces peers to each other, and answers STUN.

`python3 -m server.broker` is the broker node's main process. It listens on every combination
of its two addresses and two ports (RFC 5780 needs them all). Datagrams are told apart by their
first byte (RFC 7983): STUN goes to server.stun_service on any socket; the lab's rendezvous
messages go to server.rendezvous on the primary address and port only. Both are socket-free;
this module only moves datagrams and logs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from lab import nodeenv, stun
from lab.proto import Endpoint
from server.rendezvous import Rendezvous
from server.stun_service import Addresses, StunStats, answer

log = logging.getLogger("broker")


class Broker:
    def __init__(self, addresses: Addresses, ttl: float) -> None:
        self.addresses = addresses
        self.primary = addresses.sockets()[0]
        self.rendezvous = Rendezvous(ttl=ttl)
        self.stun_stats = StunStats()
        self.transports: dict[Endpoint, asyncio.DatagramTransport] = {}

    def received(self, data: bytes, source: Endpoint, local: Endpoint) -> None:
        if stun.is_stun(data):
            reply = answer(data, source, local, self.addresses, self.stun_stats)
            if reply is not None:
                payload, send_from, send_to = reply
                self.transports[send_from].sendto(payload, send_to.to_tuple())
            return
        if local != self.primary:
            log.info("non-STUN datagram from %s on %s ignored (rendezvous is on %s)", source, local, self.primary)
            return
        for payload, dest in self.rendezvous.handle(data, source):
            self.transports[local].sendto(payload, dest.to_tuple())


class SocketProtocol(asyncio.DatagramProtocol):
    def __init__(self, broker: Broker, local: Endpoint) -> None:
        self.broker, self.local = broker, local

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.broker.transports[self.local] = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.broker.received(data, Endpoint(addr[0], addr[1]), self.local)

    def error_received(self, exc: Exception) -> None:
        log.warning("socket %s: %s", self.local, exc)


async def serve(addresses: Addresses, ttl: float) -> None:
    loop = asyncio.get_running_loop()
    broker = Broker(addresses, ttl)
    for local in addresses.sockets():
        await loop.create_datagram_endpoint(lambda local=local: SocketProtocol(broker, local), local_addr=local.to_tuple())
    log.info("rendezvous on udp %s; STUN on %s (registration ttl %.0fs)",
             broker.primary, ", ".join(map(str, addresses.sockets())), ttl)
    nodeenv.mark_ready()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=ttl / 4)
        except asyncio.TimeoutError:
            broker.rendezvous.expire()
    for transport in broker.transports.values():
        transport.close()
    log.info("stopping: %s %s", broker.rendezvous.stats, broker.stun_stats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="server.broker", description=__doc__)
    parser.add_argument("--port", type=int, default=3478, help="primary port")
    parser.add_argument("--alt-port", type=int, default=3479, help="alternate port (RFC 5780)")
    parser.add_argument("--ttl", type=float, default=60.0, help="seconds a silent registration is kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s.%(msecs)03d %(name)s %(message)s", datefmt="%H:%M:%S")
    settings = nodeenv.settings_from_env()
    nodeenv.prepare(settings)
    primary = str(settings.addresses["wan"])
    alternate = str(settings.aliases[0].ip) if settings.aliases else primary
    if alternate == primary:
        log.warning("no second address: CHANGE-REQUEST for another IP is answered from the same IP")
    asyncio.run(serve(Addresses((primary, alternate), (args.port, args.alt_port)), args.ttl))


if __name__ == "__main__":
    main()
