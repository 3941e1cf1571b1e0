"""RFC 5780 NAT behaviour discovery, run from a host behind the NAT against the broker.

    python3 -m peers.classify --server 198.51.100.10:3478 [--lifetime-max 40]

Prints one JSON object: mapping (eim/adm/apdm), filtering (eif/adf/apdf), whether the port is
preserved, hairpinning, and (with --lifetime-max) the measured UDP mapping lifetime.

- Mapping (RFC 5780 4.3): from one socket, Binding to the primary address, to the alternate
  IP with the primary port, then to the alternate IP and port; compare the mapped addresses.
- Filtering (4.4): from a fresh socket, ask for answers from the other IP and port, then from
  the other port only; which answers arrive says what the NAT lets in.
- Hairpinning (4.5): a second socket sends to the first socket's mapped address.
- Lifetime (4.6): sockets opened together are each left idle for a different time, then the
  server is asked (RESPONSE-PORT, from another socket) to answer to that socket's mapping; the
  longest idle time still answered and the shortest not bracket the lifetime.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from peers.peer import local_ip_towards
from peers.stun_client import TRIES, WAIT, StunSocket, mapped
from wire import stun
from wire.protocol import Endpoint


def discover_mapping(local_ip: str, server: Endpoint) -> dict:
    s = StunSocket(local_ip)
    try:
        first = s.binding(server)
        if first is None:
            raise RuntimeError(f"no STUN answer from {server}")
        if "OTHER-ADDRESS" not in first.attributes:
            raise RuntimeError(f"{server} does not support RFC 5780 (no OTHER-ADDRESS)")
        other = Endpoint(*first.attributes["OTHER-ADDRESS"])
        m1 = mapped(first)
        out = {"local": str(s.local), "public": str(m1), "nat": m1.ip != s.local.ip and m1 != s.local,
               "port_preserved": m1.port == s.local.port, "other_address": str(other)}
        second = s.binding(Endpoint(other.ip, server.port))
        third = None
        if second is not None and mapped(second) != m1:
            third = s.binding(other)
        if second is None or (third is None and mapped(second) != m1):
            raise RuntimeError("the alternate address did not answer")
        if mapped(second) == m1:
            out["mapping"] = "eim"
        else:
            out["mapping"] = "adm" if mapped(third) == mapped(second) else "apdm"
        return out
    finally:
        s.close()


def discover_filtering(local_ip: str, server: Endpoint) -> str:
    s = StunSocket(local_ip)
    try:
        if s.binding(server) is None:
            raise RuntimeError(f"no STUN answer from {server}")
        if s.binding(server, stun.CHANGE_IP | stun.CHANGE_PORT) is not None:
            return "eif"
        return "adf" if s.binding(server, stun.CHANGE_PORT) is not None else "apdf"
    finally:
        s.close()


def discover_hairpinning(local_ip: str, server: Endpoint) -> bool:
    target, sender = StunSocket(local_ip), StunSocket(local_ip)
    try:
        answer = target.binding(server)
        if answer is None:
            raise RuntimeError(f"no STUN answer from {server}")
        for _ in range(TRIES):
            txn = sender.send_request(mapped(answer))
            if target.wait_for(txn, WAIT, stun.Class.REQUEST) is not None:
                return True
        return False
    finally:
        target.close()
        sender.close()


def discover_lifetime(local_ip: str, server: Endpoint, maximum: float, step: float) -> dict:
    """Bracket the mapping lifetime: idle times `step, 2*step, ... maximum`, all at once."""
    idles = [round(step * k, 3) for k in range(1, int(maximum / step) + 1)]
    probes = []
    for idle in idles:
        s = StunSocket(local_ip)
        answer = s.binding(server)
        if answer is None:
            raise RuntimeError(f"no STUN answer from {server}")
        probes.append((idle, time.monotonic(), s, mapped(answer)))
    asker = StunSocket(local_ip)
    alive: dict[float, bool] = {}
    try:
        for idle, opened, s, public in probes:
            time.sleep(max(0.0, opened + idle - time.monotonic()))
            txn = asker.send_request(server, response_port=public.port)
            alive[idle] = s.wait_for(txn, WAIT) is not None
    finally:
        asker.close()
        for _, _, s, _ in probes:
            s.close()
    last_alive = max((i for i, ok in alive.items() if ok), default=0.0)
    first_dead = min((i for i, ok in alive.items() if not ok and i > last_alive), default=None)
    estimate = None if first_dead is None else round((last_alive + first_dead) / 2, 3)
    return {"lifetime_s": estimate, "alive_at_s": last_alive, "expired_at_s": first_dead, "step_s": step}


def classify(server: Endpoint, lifetime_max: float | None, step: float) -> dict:
    local_ip = local_ip_towards(server)
    result = {"server": str(server), **discover_mapping(local_ip, server)}
    result["filtering"] = discover_filtering(local_ip, server)
    result["hairpinning"] = discover_hairpinning(local_ip, server)
    if lifetime_max:
        result.update(discover_lifetime(local_ip, server, lifetime_max, step))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.classify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="STUN server with RFC 5780 support, IP:PORT")
    parser.add_argument("--lifetime-max", type=float, default=0, help="measure the mapping lifetime up to this")
    parser.add_argument("--lifetime-step", type=float, default=0.5, help="resolution of the lifetime measurement")
    args = parser.parse_args(argv)
    try:
        result = classify(Endpoint.parse(args.server), args.lifetime_max, args.lifetime_step)
    except (RuntimeError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
