"""What a run directory holds, by name: the contract between the experiment that writes a run and
the analysis and report that read it (each only ever reads a run; neither imports the other).
"""

from __future__ import annotations

from lab.topology import Pair

RUN_RECORD = "run.json"  # the topology snapshot, the settings and the peers' own reports
RUN_FORMAT = 1  # run.json's "format": what this natlab writes, and the newest it reads
VERDICT_FILE = "verdict.json"  # the checks with their evidence, written by the CLI
LATEST = "latest"  # the link to the newest run, beside the runs
CAPTURE_STATS = "captures.json"  # each capture agent's account of its captures: kernel drops, markers, times

# The controls tag their packets with these (the lab's ping), one tag per side: the verdict finds them by it.
TAG_NO_BYPASS = "control-no-bypass"
TAG_UNSOLICITED = "control-unsolicited"


# The faults a punch test can inject (run.json "fault": its kind, when it was done, whom it hit).
FAULT_BROKER_RESTART = "broker-restart"  # between the two sides' registrations: the broker forgets the first
FAULT_PEER_KILLED = "peer-killed"  # the late side of every pair, SIGKILLed mid-exchange
FAULT_REBINDING = "rebinding"  # side a's router mid-exchange: its conntrack flushed, its ports drawn anew
FAULTS = (FAULT_BROKER_RESTART, FAULT_PEER_KILLED, FAULT_REBINDING)
# The paths a run of the user's programs may be required to show (make run EXPECT=; any: some path).
EXPECTATIONS = ("direct", "local", "relayed", "any")
MID_EXCHANGE_FAULTS = (FAULT_PEER_KILLED, FAULT_REBINDING)  # they need an exchange that outlasts them
FAULT_MIN_MESSAGES = 1000  # 10 s of data (a message every 10 ms): a mid-exchange fault comes 1.5 s after the punch


def messages_for(fault: str | None, messages: int) -> int:
    """The messages each way a run with this fault needs: a mid-exchange fault, enough to outlast it."""
    return max(messages, FAULT_MIN_MESSAGES) if fault in MID_EXCHANGE_FAULTS else messages

PROGRAMS_KIND = "programs"  # run.json "kind" of a `make run` of the user's programs (a punch test has none)


def tag(base: str, pair: Pair) -> str:
    return f"{base}-{pair.label}"
