"""The NAT router node: forwarding, NAT rules and firewall from the router's NAT setting.

    python3 -m nat.router                      the container's main process
    python3 -m nat.router apply [--nat SETTING] [--firewall on|off]    prints the state now in force (JSON)
    python3 -m nat.router show                                         prints the state in force (JSON)

The main process prepares the node, applies the rules and its access link's condition, reports ready (the healthcheck peers wait
for) and idles. `apply` replaces the rules on a running router and flushes conntrack, so a new
behaviour takes effect at once (NAT decisions are taken once per conntrack entry); it keeps
whatever it is not told to change. `show` prints the behaviour in force.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from nat import rules
from nat.behaviour import UnknownPreset, parse_nat, preset_name
from node import lifecycle, link_control, network
from node.settings import NodeSettings, node_file, settings_from_env

HOLD_TABLE = "natlab_hold"  # forwarding held while the rules change (apply)
HOLD = f"table ip {HOLD_TABLE} {{\n  chain forward {{\n    type filter hook forward priority -300; policy drop;\n  }}\n}}\n"
REQUIRED_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/ipv4/conf/all/rp_filter": "0"}


def check_sysctls() -> None:
    """The engine sets these (containers cannot write /proc/sys); refuse to run without them."""
    for key, want in REQUIRED_SYSCTLS.items():
        have = Path("/proc/sys", key).read_text().strip()
        if have != want:
            raise SystemExit(f"router: {key.replace('/', '.')} is {have}, must be {want}")


def run(argv: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"router: {' '.join(argv)} failed: {proc.stderr.strip()[:2000]}")


def current_state(settings: NodeSettings) -> dict:
    """The NAT in force, and the access link's setting as recorded (node.link_control show reads it back)."""
    if node_file("nat.json").exists():
        state = json.loads(node_file("nat.json").read_text())
    else:
        state = {"nat": settings.nat or "", "firewall": True}
    return {**state, "link": link_control.recorded().get("setting")}


def apply(settings: NodeSettings, nat: str, firewall: bool = True, ipr=None, flush: bool = True) -> dict:
    behaviour = parse_nat(nat)
    wan_ip = settings.addresses["wan"]
    names = network.interfaces_for([wan_ip, settings.addresses["lan"]], ipr)
    wan, lan = names[wan_ip], names[settings.addresses["lan"]]
    lan_net = network.subnet_of(settings.addresses["lan"], ipr) if behaviour.allocation == "block" else None
    if not flush:
        run(["nft", "-f", "-"], rules.render(behaviour, wan, lan, str(wan_ip), firewall, lan_net))
    else:
        # Entries made under the old rules keep their NAT decisions, so they go; and nothing may cross
        # meanwhile: the new rules' learn chain would learn an old entry's mapping before the flush, and
        # the new NAT would then reuse it (a rebinding that keeps its port). Forwarding is held (its
        # packets dropped, their entries never confirmed) from before the rules change until after it.
        run(["nft", "-f", "-"], HOLD)
        try:
            run(["nft", "-f", "-"], rules.render(behaviour, wan, lan, str(wan_ip), firewall, lan_net))
            subprocess.run(["conntrack", "-F"], capture_output=True)
        finally:
            run(["nft", "delete", "table", "ip", HOLD_TABLE])
    state = {
        "nat": nat,
        "preset": preset_name(behaviour),
        "behaviour": behaviour.describe(),
        "firewall": firewall,
        "wan": wan,
        "lan": lan,
    }
    node_file("nat.json").write_text(json.dumps(state) + "\n")
    print(f"{settings.name}: {nat} NAT ({behaviour.describe()}) wan={wan} lan={lan} "
          f"firewall={'on' if firewall else 'off'}", file=sys.stderr, flush=True)
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nat.router", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    re_apply = sub.add_parser("apply", help="replace the rules on a running router")
    re_apply.add_argument("--nat", help="NAT setting (preset or axes); default: the one in force")
    re_apply.add_argument("--firewall", choices=("on", "off"), help="default: as in force")
    sub.add_parser("show", help="print the behaviour in force as JSON")
    args = parser.parse_args(argv)
    settings = settings_from_env()
    try:
        if args.command == "show":
            print(json.dumps(current_state(settings)))
            return
        if args.command == "apply":
            state = current_state(settings)
            firewall = state["firewall"] if args.firewall is None else args.firewall == "on"
            print(json.dumps(apply(settings, args.nat or state["nat"], firewall)))
            return
        check_sysctls()
        with network.netlink() as ipr:  # one netlink socket for the node's start (a big lab starts hundreds)
            network.prepare(settings, ipr)
            apply(settings, settings.nat or "", ipr=ipr, flush=False)  # a new node tracks nothing yet
            link_control.start(settings, ipr)  # its access link (node/link_control.py)
    except UnknownPreset as exc:
        raise SystemExit(f"router: {exc}") from None
    lifecycle.mark_ready()
    lifecycle.wait_for_stop()


if __name__ == "__main__":
    sys.exit(main())
