"""The real broker as a process on 127.0.0.1, for tests that need its sockets (never another address).

`LoopbackBroker` starts `python -m server.broker --host 127.0.0.1` on two free high ports with its
files in a temporary directory, waits until it is ready, and stops it (SIGTERM) afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from node.key_file import load_or_create_key
from server import state_files
from tests.helpers import ROOT
from wire.auth import room_secret
from wire.protocol import Endpoint

HOST = "127.0.0.1"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def free_udp_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LoopbackBroker:
    def __init__(self, state: Path, *flags: str) -> None:
        self.state = state
        self.port, self.alt_port = free_udp_ports(2)
        self.log_path = state / "broker.log"
        state.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "server.broker", "--host", HOST, "--port", str(self.port),
                "--alt-port", str(self.alt_port), "--state-dir", str(state), *flags]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                     stderr=self.log_path.open("wb"))
        deadline = time.monotonic() + 15
        while not state_files.ready_file(state).exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"loopback broker did not start:\n{self.log}")
            time.sleep(0.05)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(HOST, self.port)

    @property
    def alt_endpoint(self) -> Endpoint:
        return Endpoint(HOST, self.alt_port)

    def secret(self, room: str) -> str:
        return room_secret(load_or_create_key(state_files.key_file(self.state)), room)

    def status(self, *flags: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "server.status", "--state-dir", str(self.state), *flags], cwd=ROOT,
                             env=ENV, capture_output=True, text=True, timeout=20, check=True)
        return json.loads(out.stdout)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def punch_peer(broker: Endpoint, room: str, peer: str, secret: str, messages: int = 5,
               timeout: float = 10.0) -> subprocess.Popen:
    """`peers.peer punch` towards a loopback broker, its JSON result on stdout."""
    argv = [sys.executable, "-m", "peers.peer", "punch", "--broker", str(broker), "--room", room, "--id", peer,
            "--secret", secret, "--messages", str(messages), "--timeout", str(timeout)]
    return subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def punch_pair(broker: Endpoint, room: str, secret: str, messages: int = 5) -> dict[str, dict]:
    """Two peers, a then b, through the broker; each one's JSON result (plus its log)."""
    procs = {}
    for peer in ("a", "b"):
        procs[peer] = punch_peer(broker, room, peer, secret, messages)
        time.sleep(0.2)
    results = {}
    for peer, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        results[peer] = {**json.loads(out.strip().splitlines()[-1]), "log": err}
    return results
