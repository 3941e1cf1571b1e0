"""Check 8, "the fault": what a punch test's injected fault did (lab.experiment.punch_test, run.json's
`fault`), read from the captures around the times the run recorded for it. The host stamped those
times with the clock the captures' timestamps come from (one kernel for every node), so a packet
is before the fault when it was captured before `at`, after it when captured after `back`.

- broker-restart: the broker's service restarted (everything it knew forgotten) while side a
  waited in its room, before side b came. The broker's captures must show a's accepted registers
  before the restart and again after it, and every introduction after it: the rendezvous came
  about only because a registered again.
- peer-killed: the late side of every pair was SIGKILLed mid-exchange. Its router's LAN capture
  must show it sent data and then nothing after it was killed; its partner must have gone on
  trying, then stopped within the silence it reported (its error says the partner went silent),
  confirmed by its own capture. The exchange could not complete: check 3 then asks only that the
  data each way, until the kill, went directly (public address to public address on both WANs).
- rebinding: side a's router forgot its NAT state and drew new ports mid-exchange. Its WAN capture
  must show a's datagrams leave from one public port before and another after (the old and the
  new mapping); the broker's, that a registered again and that the broker told its partner of the
  new mapping; b's LAN, that a's data went on arriving from the new one. Check 3 then asks, as
  ever, for every message each way.
"""

from __future__ import annotations

from lab.analysis.packets import Packet
from lab.analysis.paths import RELAYED, message_arrivals
from lab.analysis.run import RunView
from lab.analysis.verdict import Check
from lab.run_format import FAULT_BROKER_RESTART, FAULT_PEER_KILLED, FAULT_REBINDING
from lab.topology import Pair, PunchPair
from wire.protocol import Ack, Bye, Data, Probe

CHECK_ID = "8"
STOP_SLACK_S = 1.0  # between the peer's last send it reported stopping after, and the capture's last one
SESSION = (Probe, Data, Ack, Bye)


def _at(view: RunView, t: float) -> str:
    return f"+{t - view.t0:.3f}s"


def check_broker_restart(view: RunView, pp: PunchPair, fault: dict, late_peer: str) -> Check:
    early = pp.a if late_peer == "b" else pp.b
    at, back = fault["at"], fault["back"]
    registers = [p for p in view.registrations()[0] if p.msg.peer == early.label]
    before = [p for p in registers if p.time < at]
    after = [p for p in registers if p.time > back]
    intros = [p.time for p in view.introductions()]
    problems = []
    if not before:
        problems.append(f"no register of peer {early.label} reached the broker before the restart: the fault "
                        "found nobody waiting")
    if not after:
        problems.append(f"peer {early.label} did not register again after the restart")
    if not intros:
        problems.append("the broker introduced nobody")
    elif min(intros) < at:
        problems.append(f"an introduction at {_at(view, min(intros))}, before the restart: the fault came too late")
    evidence = [f"restart from {_at(view, at)} to {_at(view, back)}; peer {early.label}'s accepted registers at "
                + ", ".join(_at(view, p.time) for p in registers)]
    detail = "; ".join(problems) or (
        f"the broker restarted at {_at(view, at)} with peer {early.label} waiting ({len(before)} register(s) "
        f"before); it registered again ({len(after)} after) and both were introduced at {_at(view, min(intros))}")
    return Check(CHECK_ID, f"fault: {FAULT_BROKER_RESTART}, the peers register again", not problems, detail, evidence)


def _sent_by(packets: list[Packet], pair: Pair) -> list[Packet]:
    """The session datagrams the pair's peer sent, as its router's LAN saw them."""
    return [p for p in packets if isinstance(p.msg, SESSION) and p.msg.sender == pair.label and p.src == str(pair.private_ip)]


def check_peer_killed(view: RunView, pp: PunchPair, fault: dict, late_peer: str, reports: dict[str, dict]) -> Check:
    victim, survivor = (pp.b, pp.a) if late_peer == "b" else (pp.a, pp.b)
    at, back = fault["at"], fault["back"]
    problems, evidence = [], []
    if victim.label not in fault.get("killed", []):
        why = fault.get("missed", {}).get(victim.label, "no record of it")
        return Check(CHECK_ID, f"fault: {FAULT_PEER_KILLED}, its partner says so", False,
                     f"peer {victim.label} was not killed ({why}): the fault did not happen", evidence)
    dead = _sent_by(view.lan(victim), victim)
    alive = _sent_by(view.lan(survivor), survivor)
    data = {p.msg.seq for p in dead if isinstance(p.msg, Data) and p.time <= back}
    late = [p for p in dead if p.time > back]
    at_victim = view.vantage(*view.lan_vantage(victim))
    evidence.append(f"peer {victim.label}: {len(dead)} session datagrams at {at_victim}, {len(data)} "
                    f"messages before the kill ({_at(view, at)} to {_at(view, back)}), {len(late)} datagrams after")
    if not data:
        problems.append(f"peer {victim.label} had sent no data before it was killed: not mid-exchange")
    if late:
        problems.append(f"peer {victim.label} sent {len(late)} datagrams after it was killed")
    report = reports.get(survivor.label) or {}
    silent = report.get("partner_silent_s")
    if silent is None:
        problems.append(f"peer {survivor.label} did not report its partner gone: {report.get('error') or 'it said ok'}")
    trying = [p for p in alive if p.time > back]
    last_dead = max((p.time for p in dead), default=at)
    stop = max((p.time for p in alive), default=None)
    if not trying:
        problems.append(f"peer {survivor.label} sent nothing after the kill: it was done already")
    elif silent is not None and stop is not None and stop - last_dead > silent + STOP_SLACK_S:
        problems.append(f"peer {survivor.label} kept sending {stop - last_dead:.1f}s after its partner's last "
                        f"datagram, though it reported stopping after {silent:.1f}s of silence")
    if stop is not None:
        evidence.append(f"peer {survivor.label}: {len(trying)} datagrams after the kill, the last at {_at(view, stop)}, "
                        f"{stop - last_dead:.1f}s after its partner's last; it reported: {report.get('error')}")
    detail = "; ".join(problems) or (
        f"peer {victim.label} killed at {_at(view, at)}-{_at(view, back)} after sending {len(data)} messages, its last "
        f"datagram at {_at(view, last_dead)}; peer {survivor.label} "
        f"tried {len(trying)} more times, then stopped {stop - last_dead:.1f}s after its partner's last datagram: "
        f"\"{report.get('error')}\"")
    return Check(CHECK_ID, f"fault: {FAULT_PEER_KILLED}, its partner says so", not problems, detail, evidence)


def check_path_until_killed(view: RunView, pp: PunchPair, messages: int) -> Check:
    """Check 3 of a peer-killed run: the exchange was cut, so not every message crossed; those that did
    before the kill went directly, public address to public address, on both routers' WANs (peers behind
    one public address: to the receiver's last capture, locally or hairpinned, never on a WAN)."""
    problems, ways = [], []
    if pp.shares_edge:
        for sender, receiver in ((pp.a, pp.b), (pp.b, pp.a)):
            arrived = {p.msg.seq for p, way in message_arrivals(view, sender, receiver, (Data,)) if way != RELAYED}
            ways.append(f"{sender.label}->{receiver.label} {len(arrived)}/{messages}")
            if not arrived:
                problems.append(f"no message {sender.label}->{receiver.label} reached its receiver directly")
        detail = "; ".join(problems) or f"direct until the fault cut the exchange: {', '.join(ways)} at the receivers"
        return Check("3", "path: direct or relayed, as the NATs allow", not problems, detail, [", ".join(ways)])
    for sender, receiver in ((pp.a, pp.b), (pp.b, pp.a)):
        src, dst = str(sender.public_ip), str(receiver.public_ip)

        def seqs(pair: Pair) -> set[int]:
            return {p.msg.seq for p in view.wan(pair) if isinstance(p.msg, Data) and not p.relayed
                    and p.msg.sender == sender.label and p.src == src and p.dst == dst}

        both = seqs(sender) & seqs(receiver)
        ways.append(f"{sender.label}->{receiver.label} {len(both)}/{messages}")
        if not both:
            problems.append(f"no message {sender.label}->{receiver.label} crossed both WANs directly")
    detail = "; ".join(problems) or f"direct until the fault cut the exchange: {', '.join(ways)} on both WANs"
    return Check("3", "path: direct or relayed, as the NATs allow", not problems, detail, [", ".join(ways)])


def check_rebinding(view: RunView, pp: PunchPair, fault: dict, late_peer: str) -> Check:
    early, partner = (pp.a, pp.b) if late_peer == "b" else (pp.b, pp.a)
    at, back = fault["at"], fault["back"]
    public = str(early.public_ip)
    sent = [p for p in view.wan(early) if isinstance(p.msg, SESSION) and p.msg.sender == early.label and p.src == public]
    before = sorted({p.sport for p in sent if p.time < at})
    after = sorted({p.sport for p in sent if p.time > back})
    again = [p for p in view.registrations()[0] if p.msg.peer == early.label and p.time > back]
    told = [p for p in view.introductions() if p.msg.partner == early.label and p.time > back
            and p.msg.partner_endpoint.port in after]
    resumed = {p.msg.seq for p in view.lan(partner) if isinstance(p.msg, Data) and p.msg.sender == early.label
               and p.time > back and p.sport in after and not p.relayed}
    problems = []
    if not before or not after:
        problems.append(f"peer {early.label} sent nothing {'before' if not before else 'after'} the rebinding on "
                        f"{early.router.name}-wan")
    elif set(before) & set(after):
        problems.append(f"{early.router.name} kept port {sorted(set(before) & set(after))}: no rebinding happened")
    if not again:
        problems.append(f"peer {early.label} did not register again after the rebinding")
    if not told:
        problems.append(f"the broker did not tell peer {partner.label} of {early.label}'s new mapping")
    if not resumed:
        problems.append(f"no data of {early.label}'s reached {partner.label} from its new mapping")
    mapping = f"{early.private_ip} -> {public}:{','.join(map(str, before)) or '-'}"
    evidence = [f"{early.router.name} rebound from {_at(view, at)} to {_at(view, back)}; before: {mapping}; after: "
                f"{public}:{','.join(map(str, after)) or '-'}",
                f"{len(again)} registers of {early.label} after it; introductions of the new mapping to "
                f"{partner.label} at " + (", ".join(_at(view, p.time) for p in told) or "-")]
    detail = "; ".join(problems) or (
        f"{early.router.name} rebound {early.label}'s mapping at {_at(view, at)}: {mapping} became "
        f"{public}:{','.join(map(str, after))}; {early.label} registered again ({len(again)}), the broker told "
        f"{partner.label} at {_at(view, told[0].time)}, and {len(resumed)} messages went on directly from the new "
        "mapping")
    return Check(CHECK_ID, f"fault: {FAULT_REBINDING}, the peers meet again", not problems, detail, evidence)


def fault_checks(view: RunView, pp: PunchPair, fault: dict, late_peer: str, messages: int,
                 reports: dict[str, dict]) -> list[Check]:
    """The checks a fault adds to (8) or puts in place of (3) the pair's usual ones."""
    if fault["kind"] == FAULT_BROKER_RESTART:
        return [check_broker_restart(view, pp, fault, late_peer)]
    if fault["kind"] == FAULT_REBINDING:
        return [check_rebinding(view, pp, fault, late_peer)]
    return [check_path_until_killed(view, pp, messages), check_peer_killed(view, pp, fault, late_peer, reports)]
