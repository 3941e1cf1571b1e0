"""Port prediction: which public ports a NAT that maps per destination will give a peer's next flows.

A NAT with endpoint-dependent mapping (RFC 4787 APDM or ADM) gives the flow to the partner a public
port the broker never saw, so the partner's probes aim at the wrong port. Many such NATs hand ports
out in order. The peer reads two mappings just before it registers, Binding requests from its own
socket to the broker's address and to its other address (RFC 5780 OTHER-ADDRESS); if the second is
a small step above the first, the next flows will likely get the next ports up, and the peer
announces them (through the register and the partner's introduction). The partner probes them all
until one answers. Other hosts behind the same NAT taking ports meanwhile push the peer's flows up
the range: SPAN is how far the guess reaches.

The same rule serves the peer (peers/peer.py) and the model of what the NATs allow (nat/traversal.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from wire.protocol import MAX_PREDICTED

MAX_STEP = 8  # the most ports between two consecutive mappings still read as an allocation in order
SPAN = 16  # ports announced: the next one, and as many above it as other flows may take meanwhile
assert SPAN <= MAX_PREDICTED


@dataclass(frozen=True)
class Prediction:
    first: int  # the first predicted port; 0: none (the two mappings say nothing predictable)
    count: int
    why: str  # one line, for the peer's log and its report

    def __bool__(self) -> bool:
        return self.count > 0


def predict(first_port: int, second_port: int, span: int = SPAN) -> Prediction:
    """From the public ports of two consecutive mappings (to the broker, then to its other address)."""
    step = second_port - first_port
    if step == 0:
        return Prediction(0, 0, f"one public port ({first_port}) for both destinations: nothing to predict")
    if not 0 < step <= MAX_STEP:
        return Prediction(0, 0, f"ports {first_port} then {second_port}: not in order, nothing to predict")
    first = second_port + 1
    count = max(0, min(span, 65536 - first))
    return Prediction(first if count else 0, count,
                      f"ports {first_port} then {second_port}, {step} apart: predicting {first}-{first + count - 1}")
