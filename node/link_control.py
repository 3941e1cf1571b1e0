"""A node's access link, put in place and read back: what its main program starts, and what the host calls.

    python3 -m node.link_control set --link SETTING    replace the link's condition now; prints the state (JSON)
    python3 -m node.link_control show                   the condition in force, read back from the kernel and the stage
    python3 -m node.link_control show --recorded        only the setting last put in force (cheap)

The node's main program (a router, the broker) calls start() once: the link stage's thread first
(its queue must be bound before a rule sends packets to it), then the condition of NATLAB_LINK.
`set` hands the stage its part and waits until it holds packets by it, then replaces the kernel's
part (node/link_rules.py), and records the setting in the node's link file. A node whose interfaces are on the LAN side ("lan") has that as its
inside; every other interface is outside, towards the internet.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from node.link import LinkCondition, UnknownLink, parse_link
from node.link_rules import (
    CHAIN_IN,
    LOSS_SCALE,
    TABLE,
    duplicate_commands,
    loss_script,
    queue_jumps,
    queue_script,
    rate_commands,
    share_of,
)
from node.link_stage import LinkStage, tell
from node.network import interfaces_for
from node.settings import NodeSettings, node_file, settings_from_env

STAGE_WAIT_S = 5.0
MECHANISM = ("userspace stage on NFQUEUE (delay, jitter, reorder, corrupt), nftables numgen (loss), "
             "tbf (rate), tc mirred (duplicate)")


def link_file() -> Path:
    """The setting in force, as last set (for `show` and the host's status)."""
    return node_file("link.json")


def stage_socket() -> Path:
    return node_file("link.sock")


def sides(settings: NodeSettings, ipr=None) -> tuple[list[str], list[str]]:
    """(inside, outside) interface names of the node."""
    names = interfaces_for(list(settings.addresses.values()), ipr)
    inside = [names[ip] for side, ip in settings.addresses.items() if side == "lan"]
    outside = [names[ip] for side, ip in settings.addresses.items() if side != "lan"]
    return inside, outside


def recorded() -> dict:
    """The link's setting as last put in force on this node, from its link file (cheap: no read-back)."""
    try:
        return json.loads(link_file().read_text())
    except (OSError, ValueError):
        return {"setting": None}


def _record(setting: str, condition: LinkCondition) -> None:
    """The link file, whole or not at all (written aside, then renamed): `show` and the host read it."""
    partial = link_file().with_name(link_file().name + ".partial")
    partial.write_text(json.dumps({"setting": setting, "condition": condition.to_json()}) + "\n")
    partial.replace(link_file())


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=stdin, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"link: {' '.join(argv)} failed: {proc.stderr.strip()[:2000]}")
    return proc


def apply(settings: NodeSettings, setting: str, ipr=None) -> dict:
    """Put `setting` in force on the node's link: the stage's part first, then the kernel's."""
    condition = parse_link(setting)
    inside, outside = sides(settings, ipr)
    try:
        tell(stage_socket(), condition, STAGE_WAIT_S)
    except OSError as exc:
        raise SystemExit(f"link: the node's link stage does not answer ({exc}): is its main program running?") from None
    for builtin, chain in queue_jumps():
        _run(["iptables", "-w", "-t", "raw", "-N", chain], check=False)  # exists already: fine
        if _run(["iptables", "-w", "-t", "raw", "-C", builtin, "-j", chain], check=False).returncode != 0:
            _run(["iptables", "-w", "-t", "raw", "-I", builtin, "-j", chain])
    _run(["iptables-restore", "-w", "--noflush"], queue_script(condition, inside, outside))
    _run(["nft", "-f", "-"], loss_script(condition, inside, outside))
    for argv in rate_commands(condition, inside, outside):
        _run(argv, check=bool(condition.rate_kbit))  # deleting a bucket that is not there is fine
    for argv in duplicate_commands(condition, inside, outside):
        _run(argv, check=bool(condition.duplicate_pct))
    _record(setting, condition)
    return state(settings, ipr)


def state(settings: NodeSettings, ipr=None) -> dict:
    """The link as configured and as read back from what is installed: the stage, the queue, loss, rate."""
    inside, outside = sides(settings, ipr)
    record = recorded()
    try:
        stage = tell(stage_socket(), None, STAGE_WAIT_S)
    except (OSError, ValueError):
        stage = None
    queued = _run(["iptables", "-w", "-t", "raw", "-S", CHAIN_IN], check=False).stdout.count("NFQUEUE")
    loss = _installed_loss()
    rates = {dev: _installed_rate(dev) for dev in [*outside, *inside]}
    copies = {dev: _installed_duplicate(dev) for dev in [*inside, *outside]}
    kernel = ("loss_pct", "rate_kbit", "duplicate_pct")
    read_back = LinkCondition(
        **({k: v for k, v in stage.to_json().items() if k not in kernel} if stage and queued else {}),
        loss_pct=loss, rate_kbit=min(rates.values(), default=0) if all(rates.values()) else 0,
        duplicate_pct=min(copies.values(), default=0) if all(copies.values()) else 0,
    )
    return {
        "setting": record.get("setting"),
        "configured": record.get("condition"),
        "installed": read_back.to_json(),
        "describe": read_back.describe(),
        "mechanism": MECHANISM,
        "queued_interfaces": queued,
        "rates_kbit": rates,
        "inside": inside,
        "outside": outside,
    }


def _installed_loss() -> float:
    proc = _run(["nft", "-j", "list", "table", "ip", TABLE], check=False)
    if proc.returncode != 0:
        return 0.0
    for item in json.loads(proc.stdout).get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            match = expr.get("match", {})
            if match.get("op") == "<" and isinstance(match.get("right"), int):
                return round(match["right"] / LOSS_SCALE * 100, 6)
    return 0.0


def _installed_duplicate(dev: str) -> float:
    proc = _run(["tc", "-j", "filter", "show", "dev", dev, "ingress"], check=False)
    for item in json.loads(proc.stdout or "[]"):
        insns = item.get("options", {}).get("bytecode", {}).get("insns", [])
        if len(insns) == 5 and insns[2]["code"] == 53:
            return share_of(insns[2]["k"])
    return 0.0


def _installed_rate(dev: str) -> int:
    proc = _run(["tc", "-j", "qdisc", "show", "dev", dev, "root"], check=False)
    for qdisc in json.loads(proc.stdout or "[]"):
        if qdisc.get("kind") == "tbf":
            return round(qdisc["options"]["rate"] * 8 / 1000)  # tc -j gives bytes per second
    return 0


def start(settings: NodeSettings, ipr=None) -> LinkStage:
    """The node's link at its start: the stage's thread, then the condition it was given (NATLAB_LINK).
    A perfect link installs nothing: a new namespace has no rule to remove, and a big lab starts hundreds."""
    stage = LinkStage(stage_socket())
    stage.start()
    setting = settings.link or "lan"
    if parse_link(setting).is_perfect:
        _record(setting, LinkCondition())
    else:
        apply(settings, setting, ipr)
    return stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node.link_control", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("set", help="replace the link's condition now")
    s.add_argument("--link", required=True, help="preset or axes, e.g. mobile-3g or delay=50ms,loss=5%%")
    show = sub.add_parser("show", help="print the condition in force, read back, as JSON")
    show.add_argument("--recorded", action="store_true", help="only the setting as last put in force (no read-back)")
    args = parser.parse_args(argv)
    settings = settings_from_env()
    try:
        if args.command == "set":
            print(json.dumps(apply(settings, args.link)))
        else:
            print(json.dumps(recorded() if args.recorded else state(settings)))
    except UnknownLink as exc:
        print(f"link: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
