"""The NAT router node: forwarding, NAT rules and firewall from the router's preset.

`python3 -m nat.router` is the container's main process: it prepares the node, applies the rules,
reports ready (the healthcheck peers wait for) and then idles. `python3 -m nat.router apply
[--firewall off]` re-applies the rules on a running router and flushes conntrack, so that the new
rules take effect at once; the lab's controls use it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from lab import nodeenv
from nat import rules

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
        raise SystemExit(f"router: {' '.join(argv)} failed: {proc.stderr.strip()}")


def apply(settings: nodeenv.NodeSettings, firewall: bool = True) -> None:
    wan = nodeenv.interface_for(settings.addresses["wan"])
    lan = nodeenv.interface_for(settings.addresses["lan"])
    run(["iptables-restore", "--noflush"], rules.render(settings.nat or "", wan, lan, firewall))
    for table, hook, target in rules.hook_rules():
        present = subprocess.run(["iptables", "-t", table, "-C", hook, "-j", target], capture_output=True)
        if present.returncode != 0:
            run(["iptables", "-t", table, "-I", hook, "1", "-j", target])
    # NAT decisions are taken once per conntrack entry: forget the old ones.
    subprocess.run(["conntrack", "-F"], capture_output=True)
    print(f"{settings.name}: {settings.nat} NAT wan={wan} lan={lan} firewall={'on' if firewall else 'off'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nat.router", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    re_apply = sub.add_parser("apply", help="re-apply the rules on a running router")
    re_apply.add_argument("--firewall", choices=("on", "off"), default="on")
    args = parser.parse_args(argv)
    settings = nodeenv.settings_from_env()
    if args.command == "apply":
        apply(settings, firewall=args.firewall == "on")
        return
    check_sysctls()
    nodeenv.prepare(settings)
    apply(settings)
    nodeenv.mark_ready()
    nodeenv.wait_for_stop()


if __name__ == "__main__":
    sys.exit(main())
