"""System test: an attacker on the WAN (the outsider) against a captured punch test.

1. A first captured run; its broker capture yields a genuine register, which the outsider
   replays at once: refused (a replay: no answer), nobody moved.
2. A second captured run (lab.experiment.punch_test.run_punch_test, unchanged) while a test-local thread
   attacks from the outsider through engine.exec: registers in the run's room without the
   secret (as a, b and a third c), then, once the routers' conntrack tables show the peers'
   public endpoints, probes and data spoofed as each peer's partner (raw socket, the partner's
   public endpoint as source) to both public endpoints for the whole punch. The late peer
   starts 3 s late and 100 messages cross each way, so the spoof meets both peers' open holes.
Expected: every join refused, the peers exchange all messages and reject the forgeries (their
results count them), and the verdict from the pcaps is clean. Marker: docker (root).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from lab.analysis.packets import load
from lab.analysis.verdict import analyse_run
from lab.engines import node_commands
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from tests.helpers.lab_probes import broker_status, dropped_delta, public_endpoint
from tests.helpers.labs import needs_root, say
from wire.protocol import Register, Waiting

pytestmark = [needs_root]

MESSAGES = 100


def broker_endpoint(engine) -> str:
    return f"{engine.topology.broker.address}:{engine.topology.broker_port}"


def accepted_register(run_dir: Path) -> bytes:
    """A register the broker answered, as its capture holds it."""
    packets = load(run_dir / "broker-wan.pcap")
    answered = {(str(p.dst_ep), p.msg.txn) for p in packets if isinstance(p.msg, Waiting)}
    return next(p.payload for p in packets if isinstance(p.msg, Register) and (str(p.src_ep), p.msg.txn) in answered)


def test_a_replayed_register_is_refused(engine, tmp_path):
    run_dir = run_punch_test(engine, PunchTestConfig(messages=3), tmp_path, say)
    payload = accepted_register(run_dir)  # a waited first: its register was answered with waiting
    before = broker_status(engine)
    outcome = node_commands.attack("replay", "--broker", broker_endpoint(engine), "--payload", payload.hex()).run(
        engine, engine.topology.outsider.name)
    drops = dropped_delta(before, broker_status(engine))
    assert outcome["admitted"] == 0 and outcome["answers"] == {}, outcome
    # Within the clock window it is a replay; later it would be stale: refused either way.
    assert drops.get("replay", 0) + drops.get("stale", 0) == outcome["sent"], drops
    say(f"replayed register refused: {drops}")


class Attack(threading.Thread):
    """Joins the run's room without the secret, then spoofs both partners for the whole punch."""

    def __init__(self, engine, captures: Path) -> None:
        super().__init__(daemon=True)
        self.engine, self.captures = engine, captures
        self.joins: list[dict] = []
        self.spoof: dict | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._attack()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _attack(self) -> None:
        deadline = time.monotonic() + 60
        while not (runs := [p for p in self.captures.iterdir() if p.is_dir()]) and time.monotonic() < deadline:
            time.sleep(0.1)
        room = runs[0].name  # the scenario names the room after the run
        outsider, broker = self.engine.topology.outsider.name, broker_endpoint(self.engine)
        self.joins.append(node_commands.attack("join", "--broker", broker, "--room", room, "--count", "3").run(
            self.engine, outsider))
        endpoints: dict = {}
        while len(endpoints) < 2 and time.monotonic() < deadline:
            endpoints = {label: ep for label in ("a", "b") if (ep := public_endpoint(self.engine, label))}
            time.sleep(0.1)
        assert len(endpoints) == 2, f"the peers' public endpoints never showed: {endpoints}"
        self.joins.append(node_commands.attack("join", "--broker", broker, "--room", room, "--count", "2").run(
            self.engine, outsider))
        spoof = node_commands.attack("spoof", "--room", room, "--seconds", "10", "--rate", "200",
                                     "--to", str(endpoints["a"]), "--as", str(endpoints["b"]), "--sender", "b",
                                     "--to", str(endpoints["b"]), "--as", str(endpoints["a"]), "--sender", "a")
        self.spoof = spoof.run(self.engine, outsider)


def test_joins_and_spoofs_fail_and_the_verdict_stays_clean(engine, tmp_path):
    captures = tmp_path / "captures"
    captures.mkdir()
    attack = Attack(engine, captures)
    attack.start()
    config = PunchTestConfig(messages=MESSAGES, punch_delay_s=3.0, timeout_s=30)
    run_dir = run_punch_test(engine, config, captures, say)
    attack.join(60)
    assert attack.error is None, attack.error
    assert attack.joins and all(j["admitted"] == 0 and j["sent"] > 0 for j in attack.joins), attack.joins
    assert attack.spoof is not None and attack.spoof["sent"] > 1000, attack.spoof
    say(f"attack: joins {attack.joins}, spoof {attack.spoof}")

    record = json.loads((run_dir / "run.json").read_text())
    for label, result in record["peers"].items():
        assert result["ok"], (label, result)
        assert result["received_seqs"] == list(range(1, MESSAGES + 1)), label
        assert result["rejected"] > 0, f"peer {label} saw no forgery: the spoof never reached it"
    verdict = analyse_run(run_dir)
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    refused = [e for e in verdict.check("1").evidence if "refused" in e]
    assert refused and str(engine.topology.outsider.address) in refused[0], verdict.check("1").evidence
