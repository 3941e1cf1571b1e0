"""Reading a run's pcaps back: scapy for the frame counts, tshark as users open them."""

from __future__ import annotations

import subprocess
from pathlib import Path


def frames_per_vantage(run_dir: Path) -> dict[str, int]:
    """How many frames each <vantage>.pcap of a run holds."""
    from scapy.utils import rdpcap

    return {p.stem: len(rdpcap(str(p))) for p in sorted(run_dir.glob("*.pcap"))}


def tshark_interface_names(pcapng: Path) -> list[str]:
    """The interface name of every frame of a pcapng, as tshark reads it."""
    out = subprocess.run(["tshark", "-r", str(pcapng), "-T", "fields", "-e", "frame.interface_name"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()
