"""The peer's relayed path: a TURN allocation (RFC 8656) made with aioice's client, for a peer
whose main loop is synchronous.

aioice is asyncio; the peer is one select loop over its sockets. So the allocation lives on an
event loop in a thread of its own, and what the relay delivers is handed to the peer through a
datagram socketpair that the peer selects on like any socket. Sends go the other way through
the loop. aioice binds a channel to each peer address on its first send (which also installs
the permission) and refreshes allocation and channels; everything on the wire is aioice's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

from wire.protocol import Endpoint

ALLOCATION_LIFETIME_S = 600
_ADDRESS = struct.Struct("!4sH")  # the relayed datagram's source, ahead of its bytes on the socketpair


class RelayError(RuntimeError):
    """The allocation failed: the relay refused it (401: credentials), or did not answer."""


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, out: socket.socket) -> None:
        self.out = out

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.out.send(_ADDRESS.pack(socket.inet_aton(addr[0]), addr[1]) + data)
        except OSError:  # the peer is closing
            pass


class RelayedPath:
    """One TURN allocation on `server`, open() to make it, then send()/read() like a socket."""

    def __init__(self, server: Endpoint, username: str, password: str) -> None:
        self.server, self.username, self.password = server, username, password
        self.relayed: Endpoint | None = None
        self.allocate_s: float | None = None  # how long the allocation took: two round trips to the relay
        self._reader, self._writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="turn", daemon=True)
        self._transport = None
        logging.getLogger("aioice").setLevel(logging.CRITICAL)

    def fileno(self) -> int:
        return self._reader.fileno()

    def open(self, timeout_s: float) -> Endpoint:
        """Allocate; the relayed address. Raises RelayError with the relay's reason."""
        from aioice import turn  # only peers that relay load it

        self._thread.start()
        started = time.monotonic()

        async def allocate():
            return await turn.create_turn_endpoint(lambda: _Receiver(self._writer), self.server.to_tuple(),
                                                   self.username, self.password, lifetime=ALLOCATION_LIFETIME_S)

        future = asyncio.run_coroutine_threadsafe(allocate(), self._loop)
        try:
            self._transport, _ = future.result(timeout_s)
        except FutureTimeout:
            future.cancel()
            raise RelayError(f"no answer from the relay {self.server} within {timeout_s:g}s") from None
        except Exception as exc:  # noqa: BLE001 - aioice raises TransactionFailed/TransactionTimeout/OSError
            raise RelayError(f"the relay {self.server} refused the allocation: {exc}") from None
        self.allocate_s = time.monotonic() - started
        ip, port = self._transport.get_extra_info("sockname")
        self.relayed = Endpoint(ip, port)
        return self.relayed

    def send(self, data: bytes, to: Endpoint) -> None:
        if self._transport is None:
            raise OSError("no TURN allocation")
        self._loop.call_soon_threadsafe(self._transport.sendto, data, to.to_tuple())

    def read(self) -> tuple[bytes, Endpoint]:
        """One datagram the relay delivered, and its source (the peer address it came from)."""
        raw = self._reader.recv(4096)
        ip, port = _ADDRESS.unpack_from(raw)
        return raw[_ADDRESS.size:], Endpoint(socket.inet_ntoa(ip), port)

    def close(self, timeout_s: float = 1.0) -> None:
        """Delete the allocation (a Refresh with lifetime 0) and stop the loop."""
        if self._thread.is_alive():
            if self._transport is not None:
                transport = self._transport

                async def delete() -> None:
                    transport.close()
                    await asyncio.sleep(0.2)  # aioice deletes in a task of its own: let it send

                try:
                    asyncio.run_coroutine_threadsafe(delete(), self._loop).result(timeout_s)
                except Exception:  # noqa: BLE001 - best effort: the allocation expires anyway
                    pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
        self._reader.close()
        self._writer.close()
