"""The relay node: coturn's turnserver, the TURN server (RFC 8656) the lab's peers fall back to.

    python3 -m relay.turn_server --port 3478          the relay node's main program
    python3 -m relay.turn_server check --port 3478    whether turnserver answers here: one JSON line
    python3 -m relay.turn_server kill                 kill this node's turnserver (a fault, for tests)

The main program writes turnserver's configuration from the node's settings and starts it:
- it listens on --port of every address the node has, and relays from the same addresses;
- TURN REST credentials only (use-auth-secret): the secret is made on the node's first start
  (relay.credentials mints time-limited credentials from it); an Allocate without them is
  refused with 401, and so is a wrong or expired password;
- it relays only to the lab's public addresses that may have a peer behind them
  (NATLAB_RELAY_PEERS, ranges the host derives from the topology: not the broker, not the
  outsider): everything else is denied, loopback and multicast included.
The node says ready once turnserver answers a STUN Binding on each address, and stops turnserver
when it is stopped. If turnserver dies (a test kills it) the node stays up, so that the lab can
show the relay down rather than vanish; `check` then says it does not answer.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from ipaddress import IPv4Address

from node import lifecycle, network
from node.key_file import load_or_create_key
from node.settings import NodeSettings, node_file, private_file, settings_from_env
from relay.credentials import secret_file, secret_text
from wire import stun

REALM = "natlab"
READY_WITHIN_S = 10.0
PR_SET_PDEATHSIG = 1


def config_text(settings: NodeSettings, secret: str, port: int) -> str:
    """turnserver.conf for this node."""
    lines = [f"listening-port={port}", f"realm={REALM}", "use-auth-secret", f"static-auth-secret={secret}",
             "fingerprint", "no-tls", "no-dtls", "no-tcp-relay", "no-cli", "no-multicast-peers",
             "no-software-attribute", "relay-threads=1", "min-port=49152", "max-port=65535",
             f"pidfile={node_file('coturn.pid')}", f"userdb={node_file('turndb')}",
             "log-file=stdout", "simple-log",
             "denied-peer-ip=0.0.0.0-255.255.255.255"]
    for address in settings.addresses.values():
        lines += [f"listening-ip={address}", f"relay-ip={address}"]
    lines += [f"allowed-peer-ip={low}-{high}" for low, high in settings.relay_peers]
    return "\n".join(lines) + "\n"


def _die_with_parent() -> None:
    """turnserver must not outlive the node program (the netns engine stops nodes by their main process)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def answers(address: IPv4Address, port: int, timeout_s: float = 0.3) -> bool:
    """Whether a STUN Binding to address:port gets an answer."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(stun.encode(request), (str(address), port))
            data, _ = sock.recvfrom(2048)
            return stun.decode(data).transaction_id == request.transaction_id
        except (OSError, stun.StunError):
            return False


def wait_answering(addresses: list[IPv4Address], port: int, proc: subprocess.Popen,
                   within_s: float) -> list[IPv4Address]:
    """The addresses still silent after `within_s` (or once turnserver exited)."""
    deadline = time.monotonic() + within_s
    silent = list(addresses)
    while silent and time.monotonic() < deadline and proc.poll() is None:
        silent = [a for a in silent if not answers(a, port)]
        if silent:
            time.sleep(0.05)
    return silent


def serve(port: int) -> int:
    settings = settings_from_env()
    network.prepare(settings)
    key = load_or_create_key(secret_file(), "TURN secret")
    conf = private_file("turnserver.conf")  # it holds the secret
    conf.touch(mode=0o600)
    conf.write_text(config_text(settings, secret_text(key), port))
    proc = subprocess.Popen(["turnserver", "-c", str(conf)], preexec_fn=_die_with_parent)
    node_file("turnserver.pid").write_text(f"{proc.pid}\n")
    addresses = list(settings.addresses.values())
    silent = wait_answering(addresses, port, proc, READY_WITHIN_S)
    if silent:
        proc.kill()
        print(f"{settings.name}: turnserver did not answer on {', '.join(map(str, silent))} within "
              f"{READY_WITHIN_S:g}s (exit {proc.poll()})", file=sys.stderr, flush=True)
        return 1
    lifecycle.mark_ready()
    print(f"{settings.name}: ready, TURN on udp {', '.join(f'{a}:{port}' for a in addresses)}", flush=True)

    def stop(*_: object) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = proc.wait()
    print(f"{settings.name}: turnserver exited ({code}); the node stays up without it", flush=True)
    lifecycle.wait_for_stop()
    return 0


def check(port: int) -> dict:
    addresses = list(settings_from_env().addresses.values())
    answering = [str(a) for a in addresses if answers(a, port)]
    return {"answering": len(answering) == len(addresses) and bool(addresses), "addresses": answering}


def kill() -> dict:
    """SIGKILL this node's turnserver (its supervisor keeps the node up): the relay, down."""
    pid = int(node_file("turnserver.pid").read_text())
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return {"killed": None}
    return {"killed": pid}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relay.turn_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("serve", "check", "kill"), default="serve")
    parser.add_argument("--port", type=int, default=3478, help="the TURN port, on every address of the node")
    args = parser.parse_args(argv)
    if args.command != "serve":
        print(json.dumps(check(args.port) if args.command == "check" else kill()), flush=True)
        return 0
    return serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
