"""Port prediction: the rule that reads two mappings, and its place in the rendezvous messages."""

from __future__ import annotations

import pytest

from wire.port_prediction import MAX_STEP, SPAN, predict
from wire.protocol import MAX_PREDICTED, Endpoint, Intro, ProtocolError, Register, decode, encode


def test_ports_in_order_predict_the_next_ones_up():
    guess = predict(20001, 20002)
    assert (guess.first, guess.count) == (20003, SPAN) and guess
    assert "20003-20018" in guess.why


def test_a_few_ports_taken_between_the_bindings_still_read_as_in_order():
    assert predict(20001, 20001 + MAX_STEP).first == 20002 + MAX_STEP
    assert not predict(20001, 20002 + MAX_STEP)


@pytest.mark.parametrize(("first", "second", "why"), [
    (40000, 40000, "one public port"),  # endpoint-independent mapping: nothing to predict
    (51234, 13377, "not in order"),  # random allocation
    (20005, 20004, "not in order"),
])
def test_nothing_is_predicted_where_nothing_is_predictable(first, second, why):
    guess = predict(first, second)
    assert not guess and (guess.first, guess.count) == (0, 0) and why in guess.why


def test_the_range_stops_at_the_last_port():
    guess = predict(65530, 65531)
    assert (guess.first, guess.count) == (65532, 4)
    assert not predict(65534, 65535)


def _register(**guess) -> Register:
    return Register("room", "a", "t1", Endpoint("10.0.1.10", 4000), 1, "ab", **guess)


def test_a_register_without_a_prediction_is_what_it_was_before():
    assert b"predicted" not in encode(_register())


def test_a_prediction_goes_through_the_register_and_the_introduction():
    register = _register(predicted_port=20003, predicted_count=3)
    assert decode(encode(register)) == register
    intro = Intro("room", "t2", Endpoint("198.51.100.102", 4000), "a", Endpoint("198.51.100.101", 20001),
                  Endpoint("10.0.1.10", 4000), "ab", partner_predicted_port=20001, partner_predicted_count=3)
    assert decode(encode(intro)).partner_predicted == [Endpoint("198.51.100.101", p) for p in (20002, 20003)]


@pytest.mark.parametrize("guess", [
    {"predicted_port": 20003, "predicted_count": MAX_PREDICTED + 1},  # a partner is not made to spray more
    {"predicted_port": 70000, "predicted_count": 2},
    {"predicted_port": 0, "predicted_count": 2},
    {"predicted_port": 20003, "predicted_count": 0},
])
def test_a_prediction_out_of_bounds_is_refused_by_the_codec(guess):
    wire = encode(_register()).replace(b',"mac":""', b',"mac":"","predicted_port":%d,"predicted_count":%d'
                                       % (guess["predicted_port"], guess["predicted_count"]))
    with pytest.raises(ProtocolError, match="a prediction is a port"):
        decode(wire)
