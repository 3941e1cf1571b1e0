"""The rendezvous broker: introduces peers to each other, and answers STUN.

`python3 -m server.broker` is the broker node's main process. It listens on every combination
of its two addresses and two ports (RFC 5780 needs them all). Datagrams are told apart by their
first byte (RFC 7983): STUN goes to server.stun_service on any socket; the lab's rendezvous
messages go to server.rendezvous on the primary address and port only. Both are socket-free;
this module only bounds, moves and counts datagrams: anything longer than MAX_DATAGRAM and
anything over its source's rate (server.limits) is dropped before it is parsed.

`--host` runs it standalone (a test on 127.0.0.1, a second broker in the lab for the benchmark):
bound there, with no node setup (routes, aliases), its files in --state-dir.

Statistics (datagrams, answers, drops by reason) are logged every STATS_EVERY_S when they
changed, on SIGUSR1 and at exit, and written each time to broker-stats.json (server.status).

SIGHUP restarts the service (the lab's broker-restart fault, `server.status --restart`): its
sockets close, every member, room and rate limit it held is forgotten, the key is read again
from its file and the sockets open anew; the node (its link's stage) stays as it was. The
statistics start again too, stamped with the new start's time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from node import lifecycle, link_control, network
from node.key_file import load_or_create_key
from node.settings import settings_from_env
from server import state_files
from server.limits import Limits, SourceLimiter
from server.rendezvous import Rendezvous
from server.stun_service import Addresses, StunStats, answer
from wire import stun
from wire.protocol import MAX_DATAGRAM, Endpoint

log = logging.getLogger("broker")
STATS_EVERY_S = 10.0


class Broker:
    def __init__(self, addresses: Addresses, key: bytes, limits: Limits = Limits()) -> None:
        self.addresses = addresses
        self.primary = addresses.sockets()[0]
        self.limits = limits
        self.rendezvous = Rendezvous(key, limits)
        self.stun_stats = StunStats()
        self.stun_limiter = SourceLimiter(limits.stun_rate, limits.stun_burst, limits.sources)
        self.rendezvous_limiter = SourceLimiter(limits.rendezvous_rate, limits.rendezvous_burst, limits.sources)
        self.datagrams = 0
        self.dropped: Counter = Counter()  # before any parser: size, rate, wrong socket
        self.transports: dict[Endpoint, asyncio.DatagramTransport] = {}

    def received(self, data: bytes, source: Endpoint, local: Endpoint, now: float | None = None) -> None:
        self.datagrams += 1
        now = time.monotonic() if now is None else now
        if len(data) > MAX_DATAGRAM:
            self.dropped["oversize"] += 1
            return
        if stun.is_stun(data):
            if not self.stun_limiter.allow(source.ip, now):
                self.dropped["stun-rate-limited"] += 1
                return
            reply = answer(data, source, local, self.addresses, self.stun_stats)
            if reply is not None:
                payload, send_from, send_to = reply
                self.transports[send_from].sendto(payload, send_to.to_tuple())
            return
        if local != self.primary:
            self.dropped["not-the-rendezvous-socket"] += 1
            return
        if not self.rendezvous_limiter.allow(source.ip, now):
            self.dropped["rate-limited"] += 1
            return
        for payload, dest in self.rendezvous.handle(data, source):
            self.transports[local].sendto(payload, dest.to_tuple())

    def stats(self) -> dict:
        """Everything counted so far, drops by reason across the dispatcher and both services."""
        rendezvous = self.rendezvous.stats.snapshot()
        dropped = Counter(self.dropped) + Counter(rendezvous.pop("dropped"))
        dropped["stun-unanswerable"] += self.stun_stats.ignored
        return {
            "datagrams": self.datagrams,
            "dropped": dict(sorted((k, v) for k, v in dropped.items() if v)),
            "rendezvous": rendezvous,
            "stun": asdict(self.stun_stats),
            "rooms": len(self.rendezvous.rooms),
            "replay_entries": len(self.rendezvous.replays),
            "sources_tracked": len(self.rendezvous_limiter.buckets) + len(self.stun_limiter.buckets),
        }


class SocketProtocol(asyncio.DatagramProtocol):
    def __init__(self, broker: Broker, local: Endpoint) -> None:
        self.broker, self.local = broker, local

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.broker.transports[self.local] = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.broker.received(data, Endpoint(addr[0], addr[1]), self.local)
        except Exception:  # noqa: BLE001 - one bad datagram must not take the service down; counted, logged
            self.broker.dropped["internal-error"] += 1
            log.exception("datagram from %s:%s on %s", addr[0], addr[1], self.local)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket %s: %s", self.local, exc)  # ICMP errors of earlier sends: nothing to do


class StatsReporter:
    """Logs the broker's statistics when they changed, and keeps broker-stats.json current."""

    def __init__(self, broker: Broker, path: Path) -> None:
        self.broker, self.path, self.last = broker, path, None
        self.started = time.time()  # this start of the service: a restart shows as a later one

    def report(self, force: bool = False) -> None:
        stats = self.broker.stats()
        if stats == self.last and not force:
            return
        self.last = stats
        log.info("stats %s", json.dumps(stats, separators=(",", ":")))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"time": time.time(), "started": self.started, **stats}) + "\n")
        tmp.replace(self.path)


async def serve(
    addresses: Addresses, key: bytes, limits: Limits, directory: Path, mark_ready: Callable[[], None]
) -> bool:
    """Serve until SIGTERM/SIGINT (False) or SIGHUP (True: start again, with nothing remembered)."""
    loop = asyncio.get_running_loop()
    broker = Broker(addresses, key, limits)
    for local in addresses.sockets():
        await loop.create_datagram_endpoint(lambda local=local: SocketProtocol(broker, local),
                                            local_addr=local.to_tuple())
    log.info("rendezvous on udp %s; STUN on %s (member ttl %.0fs); limits %s",
             broker.primary, ", ".join(map(str, addresses.sockets())), limits.member_ttl_s, asdict(limits))
    reporter = StatsReporter(broker, state_files.stats_file(directory))
    state_files.pid_file(directory).write_text(f"{os.getpid()}\n")
    reporter.report(force=True)
    mark_ready()
    stop = asyncio.Event()
    restart = False

    def restart_now() -> None:
        nonlocal restart
        restart = True
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, restart_now)
    loop.add_signal_handler(signal.SIGUSR1, lambda: reporter.report(force=True))
    next_report = time.monotonic() + STATS_EVERY_S
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=min(limits.member_ttl_s / 4, STATS_EVERY_S))
        except asyncio.TimeoutError:
            broker.rendezvous.expire()
        if time.monotonic() >= next_report:
            reporter.report()
            next_report = time.monotonic() + STATS_EVERY_S
    for transport in broker.transports.values():
        transport.close()
    reporter.report(force=True)
    log.info("restarting: every member and room forgotten" if restart else "stopping")
    return restart


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(member_ttl_s=args.ttl, rendezvous_rate=args.rate, rendezvous_burst=args.burst,
                  stun_rate=args.stun_rate, stun_burst=args.stun_burst)


def main(argv: list[str] | None = None) -> None:
    defaults = Limits()
    parser = argparse.ArgumentParser(prog="server.broker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3478, help="primary port")
    parser.add_argument("--alt-port", type=int, default=3479, help="alternate port (RFC 5780)")
    parser.add_argument("--host", help="standalone: bind this address, no node setup")
    parser.add_argument("--alt-host", help="standalone: the alternate address (default: --host)")
    parser.add_argument("--state-dir", help="where the key, pid and stats files live (default: the node's)")
    parser.add_argument("--ttl", type=float, default=defaults.member_ttl_s, help="seconds a silent member is kept")
    parser.add_argument("--rate", type=float, default=defaults.rendezvous_rate,
                        help="rendezvous datagrams per second per source IP (0: no limit)")
    parser.add_argument("--burst", type=float, default=defaults.rendezvous_burst)
    parser.add_argument("--stun-rate", type=float, default=defaults.stun_rate,
                        help="STUN requests per second per source IP (0: no limit)")
    parser.add_argument("--stun-burst", type=float, default=defaults.stun_burst)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s.%(msecs)03d %(name)s %(message)s", datefmt="%H:%M:%S")
    directory = state_files.state_dir(args.state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    if args.host:
        primary, alternate = args.host, args.alt_host or args.host

        def mark_ready() -> None:
            state_files.ready_file(directory).write_text("ready\n")
    else:
        settings = settings_from_env()
        network.prepare(settings)
        link_control.start(settings)  # the broker's access link (LINK_BROKER), before it answers anyone
        primary = str(settings.addresses["wan"])
        alternate = str(settings.aliases[0].ip) if settings.aliases else primary
        mark_ready = lifecycle.mark_ready
    if alternate == primary:
        log.warning("no second address: CHANGE-REQUEST for another IP is answered from the same IP")
    addresses = Addresses((primary, alternate), (args.port, args.alt_port))
    while asyncio.run(serve(addresses, load_or_create_key(state_files.key_file(args.state_dir)), limits_from(args),
                            directory, mark_ready)):
        pass


if __name__ == "__main__":
    main()
