"""The one host setting a netns lab touches: the kernel's ARP table limits, raised for a big lab.

The kernel's ARP table is one for all namespaces; past gc_thresh3 entries it refuses new ones
("neighbor table overflow"), and a router stops answering ARP. A big lab needs more than the
default 1024: the engine raises the limits while its lab is up, and puts them back at lab-down.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab.engines.netns.layout import STATE_ROOT, NetnsLayout
from lab.errors import Progress
from node.netns import write_sysctl

NEIGH_SYSCTLS = ("net.ipv4.neigh.default.gc_thresh2", "net.ipv4.neigh.default.gc_thresh3")
NEIGH_PER_INTERFACE = 8  # entries to allow for each lab interface (WAN hosts see every router)


def _read(key: str) -> int:
    return int(Path("/proc/sys", key.replace(".", "/")).read_text())


def _record(layout: NetnsLayout) -> Path:
    return layout.state_dir / "host-sysctls.json"


def raise_arp_limits(layout: NetnsLayout, progress: Progress) -> None:
    """Raise the kernel's (global) ARP table limits if this lab needs more; remember what they were."""
    need = NEIGH_PER_INTERFACE * sum(len(n.interfaces) for n in layout.topology.nodes)
    have = {key: _read(key) for key in NEIGH_SYSCTLS}
    wanted = {NEIGH_SYSCTLS[0]: need * 3 // 4, NEIGH_SYSCTLS[1]: need}
    raise_to = {key: value for key, value in wanted.items() if value > have[key]}
    if not raise_to:
        return
    _record(layout).write_text(json.dumps({"was": have, "set": raise_to}))
    progress("raising the kernel's ARP table limits for a lab this big: "
             + ", ".join(f"{k}={v}" for k, v in raise_to.items()))
    for key, value in raise_to.items():
        write_sysctl(key, value)


def restore_arp_limits(layout: NetnsLayout) -> None:
    """Put back what raise_arp_limits raised, unless another lab is up or someone changed it since."""
    saved = _record(layout)
    others = [d for d in STATE_ROOT.iterdir() if d != layout.state_dir] if STATE_ROOT.exists() else []
    if not saved.exists() or others:
        return
    record = json.loads(saved.read_text())
    for key, value in record["set"].items():
        if _read(key) == value:
            write_sysctl(key, record["was"][key])
