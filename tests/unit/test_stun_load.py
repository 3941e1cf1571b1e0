"""The benchmark's load generator against the real broker on 127.0.0.1 (make bench-broker uses it in the lab)."""

from __future__ import annotations

from peers.stun_load import load, request
from tests.helpers.loopback import LoopbackBroker


def test_requests_are_20_byte_bindings_with_distinct_ids():
    (first, tid1), (_, tid2) = request(0), request(1)
    assert len(first) == 20 and first[:2] == b"\x00\x01" and tid1 != tid2 and first[8:] == tid1


def test_the_load_generator_counts_answers_from_the_broker(tmp_path):
    broker = LoopbackBroker(tmp_path / "broker", "--stun-rate", "0")
    try:
        out = load(broker.endpoint, seconds=0.5, window=16)
    finally:
        broker.stop()
    assert out["answered"] > 100 and out["rps"] > 0 and out["answered"] <= out["sent"]
