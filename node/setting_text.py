"""The shape of a NAT or link setting: a preset name first (or none), then KEY=VALUE axes.

nat/behaviour.py and node/link.py give the names and values their meaning; this only splits the
text and refuses what has no shape, with the valid presets in the message.
"""

from __future__ import annotations

from collections.abc import Iterable


def split_setting(text: str, kind: str, presets: Iterable[str], axes_help: str,
                  error: type[ValueError]) -> tuple[str | None, list[tuple[str, str]]]:
    """(the preset named first, or None; the axes as (key, value)) of a setting such as `wifi,loss=5%`."""
    names = list(presets)
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise error(f"empty {kind} setting; valid presets: {', '.join(names)}")
    preset = None
    if "=" not in items[0]:
        preset = items.pop(0)
        if preset not in names:
            raise error(f"unknown {kind} preset {preset!r}; valid presets: {', '.join(names)} (or axes: {axes_help})")
    axes = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise error(f"{item!r}: a preset name may only come first; axes are KEY=VALUE")
        axes.append((key, value.strip()))
    return preset, axes
