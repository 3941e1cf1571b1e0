"""Classify a router's NAT three ways and compare: the lab's own RFC 5780 classifier, coturn's
turnutils_natdiscovery (RFC 5780) and stun-client's `stun` (RFC 3489), all run inside the peer
behind it against the broker. The two outside tools are independent judges of the lab's NAT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.engines import node_commands
from lab.engines.base import Engine
from lab.errors import Progress
from lab.experiment.nat_control import flush_nat_state, live_nat, set_nat
from lab.topology import Pair
from nat.behaviour import NatBehaviour, parse_nat

NATDISCOVERY_MAPPING = {
    "Endpoint Independent Mapping": "eim",
    "Address Dependent Mapping": "adm",
    "Address and Port Dependent Mapping": "apdm",
}
NATDISCOVERY_FILTERING = {
    "Endpoint Independent Filtering": "eif",
    "Address Dependent Filtering": "adf",
    "Address and Port Dependent Filtering": "apdf",
}
STUN_FILTERING = {"Independent Filter": "eif", "Address Dependent Filter": "adf", "Port Dependent Filter": "apdf"}


def natdiscovery_complete(text: str) -> bool:
    """Whether the mapping tests all got answers. natdiscovery keeps the previous mapped address
    when an answer times out, so a lost test II answer reads as "Endpoint Independent"."""
    section = text.split("Mapping Behavior Discovery", 1)[-1].split("Filtering Behavior Discovery", 1)[0]
    answers = section.count("UDP reflexive addr")
    verdict = parse_natdiscovery(text)["mapping"]
    return verdict is not None and answers >= (2 if verdict == "eim" else 3)


def stun_client_complete(text: str) -> bool:
    """`stun -v` says which RFC 3489 tests were answered; tests I and I(2) decide the mapping."""
    return "test I = 1" in text and "test I(2) = 1" in text


def parse_natdiscovery(text: str) -> dict:
    """The verdict lines of `turnutils_natdiscovery -m -f [-H]`; None where it reached none."""
    out: dict = {"mapping": None, "filtering": None}
    for line in text.splitlines():
        match = re.match(r"NAT with (.+)!$", line.strip())
        if match and match.group(1) in NATDISCOVERY_MAPPING:
            out["mapping"] = NATDISCOVERY_MAPPING[match.group(1)]
        elif match and match.group(1) in NATDISCOVERY_FILTERING:
            out["filtering"] = NATDISCOVERY_FILTERING[match.group(1)]
    out["hairpinning"] = "maybe a successful hairpinning" in text
    return out


def parse_stun_client(text: str) -> dict:
    """stun-client's `Primary:` line. RFC 3489 cannot tell ADM from APDM ("dependent"), nor a
    symmetric NAT's filtering (None)."""
    line = next((ln for ln in text.splitlines() if ln.startswith("Primary:")), "")
    if not line:
        return {"mapping": None, "filtering": None, "port_preserved": None, "hairpinning": None, "raw": text[-200:]}
    filtering = next((v for k, v in STUN_FILTERING.items() if k in line), None)
    return {
        "mapping": "eim" if "Independent Mapping" in line else "dependent" if "Dependent Mapping" in line else None,
        "filtering": filtering,
        "port_preserved": "preserves ports" in line,
        "hairpinning": "will hairpin" in line,
        "raw": line.removeprefix("Primary:").strip(),
    }


@dataclass
class Classification:
    router: str
    setting: str
    configured: NatBehaviour
    own: dict
    natdiscovery: dict
    stun_client: dict
    disagreements: list[str] = field(default_factory=list)

    def compare(self, check_lifetime: bool = False) -> None:
        want = self.configured
        for judge, got in (("own", self.own), ("natdiscovery", self.natdiscovery), ("stun-client", self.stun_client)):
            expected_mapping = want.mapping if judge != "stun-client" or want.mapping == "eim" else "dependent"
            if got.get("mapping") != expected_mapping:
                self.disagreements.append(f"{judge}: mapping {got.get('mapping')} != {expected_mapping}")
            if got.get("filtering") is not None or judge != "stun-client":
                if got.get("filtering") != want.filtering:
                    self.disagreements.append(f"{judge}: filtering {got.get('filtering')} != {want.filtering}")
            if got.get("hairpinning") is not None and got.get("hairpinning") != want.hairpinning:
                self.disagreements.append(f"{judge}: hairpinning {got.get('hairpinning')} != {want.hairpinning}")
        for judge, got in (("own", self.own), ("stun-client", self.stun_client)):
            preserved = want.allocation == "preserve"
            if got.get("port_preserved") is not None and got["port_preserved"] != preserved:
                self.disagreements.append(f"{judge}: port preserved {got['port_preserved']} != {preserved}")
        if check_lifetime:
            measured = self.own.get("lifetime_s")
            if measured is None or abs(measured - want.udp_timeout_s) > 1:
                self.disagreements.append(f"own: lifetime {measured} not within 1s of {want.udp_timeout_s}s")


def own_classifier(engine: Engine, pair: Pair, lifetime_max: float = 0) -> dict:
    topo = engine.topology
    flush_nat_state(engine, pair.router.name)
    server = f"{topo.broker.address}:{topo.broker_port}"
    return node_commands.classify(server, lifetime_max).run(engine, pair.peer.name)


def _run_tool(engine: Engine, pair: Pair, argv: list[str], complete, attempts: int = 3) -> str:
    """Run an outside classifier on fresh NAT state until its tests were all answered (UDP can
    lose a datagram; these tools then guess). The last output is returned either way."""
    for _ in range(attempts):
        flush_nat_state(engine, pair.router.name)
        text = node_commands.outside_tool(argv).run(engine, pair.peer.name)  # stun -v reports its tests on stderr
        if complete(text):
            break
    return text


def independent_classifiers(engine: Engine, pair: Pair, hairpin: bool) -> tuple[dict, dict]:
    broker = str(engine.topology.broker.address)
    flags = ["-m", "-f"] + (["-H"] if hairpin else [])
    natdiscovery = parse_natdiscovery(
        _run_tool(engine, pair, ["turnutils_natdiscovery", *flags, broker], natdiscovery_complete)
    )
    if not hairpin:
        natdiscovery["hairpinning"] = None  # not asked
    stun_client = parse_stun_client(_run_tool(engine, pair, ["stun", broker, "-v"], stun_client_complete))
    return natdiscovery, stun_client


def classify(engine: Engine, pair: Pair, setting: str, lifetime_max: float = 0) -> Classification:
    """Set the router to `setting`, classify it three ways, compare with what was configured."""
    behaviour = parse_nat(setting)
    set_nat(engine, pair.router.name, setting)
    own = own_classifier(engine, pair, lifetime_max)
    natdiscovery, stun_client = independent_classifiers(engine, pair, behaviour.hairpinning)
    result = Classification(pair.router.name, setting, behaviour, own, natdiscovery, stun_client)
    result.compare(check_lifetime=bool(lifetime_max))
    return result


def classify_all(engine: Engine, pair: Pair, settings: list[str], progress: Progress,
                 lifetime_max: float = 0) -> list[Classification]:
    """Each setting in turn on one router; the router's own setting is put back afterwards."""
    before = live_nat(engine, pair.router.name)["nat"]
    rows = []
    try:
        for setting in settings:
            progress(f"classifying {pair.router.name} as {setting}")
            rows.append(classify(engine, pair, setting, lifetime_max))
    finally:
        set_nat(engine, pair.router.name, before)
    return rows
