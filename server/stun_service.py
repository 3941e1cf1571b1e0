"""STUN Binding service of the broker (RFC 8489), with RFC 5780 behaviour discovery.

The broker listens on two addresses × two ports. A Binding request is answered with the
source address the broker saw (XOR-MAPPED-ADDRESS, and MAPPED-ADDRESS for old clients), where
the answer came from (RESPONSE-ORIGIN) and the broker's other address and port (OTHER-ADDRESS),
so a client can tell how its NAT maps and filters. CHANGE-REQUEST makes the answer leave from
the other address and/or port; RESPONSE-PORT sends it to another port of the client's address
(the mapping-lifetime test). RFC 3489 clients (no magic cookie, e.g. stun-client) get the
attributes they know: MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS.

Socket-free, like server.rendezvous: answer() maps one datagram to at most one datagram.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from wire import stun
from wire.protocol import Endpoint

log = logging.getLogger("broker.stun")

SOFTWARE = "natlab-broker"
KNOWN_REQUIRED = {0x0003, 0x0006, 0x0008, 0x0024, 0x0025, stun.RESPONSE_PORT}  # CHANGE-REQUEST, USERNAME, ...


@dataclass(frozen=True)
class Addresses:
    """The broker's two IPs and two ports; every combination is a listening socket."""

    ips: tuple[str, str]
    ports: tuple[int, int]

    def sockets(self) -> list[Endpoint]:
        return list(dict.fromkeys(Endpoint(ip, port) for ip in self.ips for port in self.ports))

    def _other(self, values: tuple, value: object) -> object:
        return values[1] if value == values[0] else values[0]

    def other(self, local: Endpoint) -> Endpoint:
        """OTHER-ADDRESS: the alternate IP with the port the request did not come to.

        On the primary IP this is exactly RFC 5780's "change IP and port" address. On the
        alternate IP it keeps naming the alternate IP (RFC 5780 would name the primary): coturn's
        turnutils_natdiscovery takes test III's target from the test II answer, and test III
        must go to the alternate IP and port. RFC-following clients read OTHER-ADDRESS from test
        I's answer, on the primary, and see no difference.
        """
        return Endpoint(self.ips[1], self._other(self.ports, local.port))

    def answer_from(self, local: Endpoint, change: int) -> Endpoint:
        ip = self._other(self.ips, local.ip) if change & stun.CHANGE_IP else local.ip
        port = self._other(self.ports, local.port) if change & stun.CHANGE_PORT else local.port
        return Endpoint(ip, port)


@dataclass
class StunStats:
    answered: int = 0
    errors: int = 0
    ignored: int = 0


def _error(request: stun.Message, data: bytes, code: int, reason: str, unknown: list[int] | None = None) -> bytes:
    attrs: OrderedDict = OrderedDict(
        [("ERROR-CODE", (code, reason)), ("SOFTWARE", SOFTWARE)]
    )
    if unknown:
        attrs["UNKNOWN-ATTRIBUTES"] = unknown
    reply = stun.Message(request.message_method, stun.Class.ERROR, request.transaction_id, attrs)
    return stun.encode(reply, data, fingerprint=not stun.is_classic(data))


def answer(
    data: bytes, source: Endpoint, local: Endpoint, addresses: Addresses, stats: StunStats
) -> tuple[bytes, Endpoint, Endpoint] | None:
    """(reply, send-from, send-to) for a STUN datagram that arrived on `local`, or None."""
    try:
        request = stun.decode(data)
    except stun.StunError as exc:
        stats.ignored += 1
        log.info("unparseable STUN from %s: %s", source, exc)
        return None  # no transaction id we could trust to answer with
    if request.message_class != stun.Class.REQUEST:
        stats.ignored += 1
        return None  # indications and stray responses get no answer
    if request.message_method != stun.Method.BINDING:
        stats.errors += 1
        return _error(request, data, 400, "only Binding is served here"), local, source
    unknown = [t for t in stun.attribute_types(data) if t < 0x8000 and t not in KNOWN_REQUIRED]
    if unknown:
        stats.errors += 1
        return _error(request, data, 420, "Unknown Attribute", unknown), local, source
    change = request.attributes.get("CHANGE-REQUEST", 0)
    send_from = addresses.answer_from(local, change)
    send_to = source
    if "RESPONSE-PORT" in request.attributes:
        port = request.attributes["RESPONSE-PORT"]
        if not 0 < port < 65536:
            stats.errors += 1
            return _error(request, data, 400, "bad RESPONSE-PORT"), local, source
        send_to = Endpoint(source.ip, port)
    attrs: OrderedDict = OrderedDict()
    if stun.is_classic(data):
        attrs["MAPPED-ADDRESS"] = source.to_tuple()
        attrs["SOURCE-ADDRESS"] = send_from.to_tuple()
        attrs["CHANGED-ADDRESS"] = addresses.other(local).to_tuple()
    else:
        attrs["XOR-MAPPED-ADDRESS"] = source.to_tuple()
        attrs["MAPPED-ADDRESS"] = source.to_tuple()
        attrs["RESPONSE-ORIGIN"] = send_from.to_tuple()
        attrs["OTHER-ADDRESS"] = addresses.other(local).to_tuple()
        attrs["SOFTWARE"] = SOFTWARE
    reply = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, request.transaction_id, attrs)
    stats.answered += 1
    return stun.encode(reply, data, fingerprint=not stun.is_classic(data)), send_from, send_to
