"""Network conditions of an access link (latency, jitter, loss, rate, reordering), by preset or axis.

A node's link setting is one string, like a NAT setting: a preset, axes, or a preset with axes on
top of it:

    lan
    mobile-3g
    delay=50ms,jitter=10ms,loss=5%
    wifi,loss=5%

Every figure is one-way and holds in each direction of the link: `delay=50ms` on a router's link
delays what its LAN sends to the internet by 50 ms and what the internet sends to its LAN by 50 ms
(100 ms more round trip). parse_link() turns a setting into a LinkCondition or fails with what is
valid, before anything starts. node/link_rules.py turns one into kernel rules and node/link_stage.py
holds the packets that must wait.

Where the preset figures come from: they are the ones natlab's link issue proposed, as one-way
values on the access link; they are orders of magnitude, not measurements of any network (Wi-Fi a
few ms, 4G tens, 3G about 100 ms, a low-orbit satellite about 40 ms). A geostationary satellite's
300 ms follows from physics: 36,000 km up and as many down take 240 ms at the speed of light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

from node.setting_text import split_setting

MAX_DELAY_MS = 10_000.0
MAX_RATE_KBIT = 10_000_000  # 10 Gbit/s
AXES = ("delay", "jitter", "loss", "rate", "reorder", "duplicate", "corrupt")


@dataclass(frozen=True)
class LinkCondition:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # each packet's delay is uniform in delay ± jitter
    loss_pct: float = 0.0
    rate_kbit: int = 0  # 0: not limited
    reorder_pct: float = 0.0  # packets sent at once, ahead of the delayed ones (as netem's reorder)
    duplicate_pct: float = 0.0
    corrupt_pct: float = 0.0  # a bit flipped in the payload (the receiver's checksum drops it)

    @property
    def holds_packets(self) -> bool:
        """Whether the link needs the userspace stage (delay, jitter, reorder, corruption)."""
        return bool(self.delay_ms or self.jitter_ms or self.reorder_pct or self.corrupt_pct)

    @property
    def is_perfect(self) -> bool:
        return self == LinkCondition()

    def describe(self) -> str:
        """The axes that are set, as a link setting that parses back to this condition ('lan' if none)."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                axis, unit = f.name.rsplit("_", 1)
                text = _rate_text(value) if unit == "kbit" else f"{_number(value)}{UNIT_TEXT[unit]}"
                parts.append(f"{axis}={text}")
        return ",".join(parts) or "lan"

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict) -> LinkCondition:
        return cls(**{f.name: data.get(f.name, f.default) for f in fields(cls)})


UNIT_TEXT = {"ms": "ms", "pct": "%"}

PRESETS: dict[str, LinkCondition] = {
    "lan": LinkCondition(),
    "wifi": LinkCondition(delay_ms=5, jitter_ms=2, loss_pct=0.1),
    "wifi-bad": LinkCondition(delay_ms=40, jitter_ms=15, loss_pct=2, rate_kbit=20_000),
    "mobile-4g": LinkCondition(delay_ms=25, jitter_ms=8, loss_pct=0.5),
    "mobile-3g": LinkCondition(delay_ms=100, jitter_ms=30, loss_pct=2, rate_kbit=2_000),
    "satellite": LinkCondition(delay_ms=40, jitter_ms=7, loss_pct=1),
    "satellite-geo": LinkCondition(delay_ms=300, jitter_ms=20, loss_pct=0.5, rate_kbit=25_000),
}
DEFAULT_LINK = "lan"


class UnknownLink(ValueError):
    """A link setting that names no preset, or axes that are unknown or impossible."""


def _number(value: float) -> str:
    """A figure as people write it: 0.5, 100, 2.25 (no exponent, no trailing zeros)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _rate_text(kbit: float) -> str:
    for unit, size in (("gbit", 1_000_000), ("mbit", 1000)):
        if kbit >= size and kbit % size == 0:
            return f"{int(kbit) // size}{unit}"
    return f"{int(kbit)}kbit"


TIME = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s)?$")
PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%?$")
RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|kbps|mbps|gbps)?$", re.I)
RATE_KBIT = {"bit": 0.001, "kbit": 1, "mbit": 1000, "gbit": 1_000_000, "kbps": 8, "mbps": 8000, "gbps": 8_000_000}


def _time_ms(key: str, value: str) -> float:
    match = TIME.match(value)
    if not match:
        raise UnknownLink(f"{key} must be a time such as 50ms, 0.3s or 800us (0 or more), not {value!r}")
    ms = float(match.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, None: 1}[match.group(2)]
    if ms > MAX_DELAY_MS:
        raise UnknownLink(f"{key} must be at most {MAX_DELAY_MS / 1000:g}s, not {value!r}")
    return ms


def _percent(key: str, value: str) -> float:
    match = PERCENT.match(value)
    if not match or float(match.group(1)) > 100:
        raise UnknownLink(f"{key} must be a percentage from 0% to 100%, not {value!r}")
    return float(match.group(1))


def _rate_kbit(key: str, value: str) -> int:
    match = RATE.match(value)
    if not match:
        raise UnknownLink(f"{key} must be a rate such as 2mbit, 500kbit or 25mbit (0: unlimited), not {value!r}")
    kbit = float(match.group(1)) * RATE_KBIT[(match.group(2) or "kbit").lower()]
    if kbit and not 8 <= kbit <= MAX_RATE_KBIT:
        raise UnknownLink(f"{key} must be from 8kbit to 10gbit, not {value!r}")
    return round(kbit)


AXIS_PARSERS = {
    "delay": ("delay_ms", _time_ms),
    "jitter": ("jitter_ms", _time_ms),
    "loss": ("loss_pct", _percent),
    "rate": ("rate_kbit", _rate_kbit),
    "reorder": ("reorder_pct", _percent),
    "duplicate": ("duplicate_pct", _percent),
    "corrupt": ("corrupt_pct", _percent),
}


def parse_link(text: str) -> LinkCondition:
    axes_help = f"{'=..,'.join(AXES)}=.., e.g. delay=50ms,jitter=10ms,loss=5%,rate=2mbit"
    preset, axes = split_setting(text, "link", PRESETS, axes_help, UnknownLink)
    condition = PRESETS[preset or DEFAULT_LINK]
    for key, value in axes:
        if key not in AXIS_PARSERS:
            raise UnknownLink(f"unknown link axis {key!r}; valid: {', '.join(AXES)}")
        field, parse = AXIS_PARSERS[key]
        condition = replace(condition, **{field: parse(key, value)})
    if condition.jitter_ms > condition.delay_ms:
        raise UnknownLink(f"jitter ({_number(condition.jitter_ms)}ms) above delay ({_number(condition.delay_ms)}ms): "
                          "a packet cannot leave before it was sent; give a delay of at least the jitter")
    if condition.reorder_pct and not condition.delay_ms:
        raise UnknownLink("reorder needs a delay: reordered packets are the ones that skip it")
    return condition


def validate_link(text: str) -> str:
    """Return the link setting unchanged if it parses; otherwise fail with what is valid."""
    parse_link(text)
    return text
