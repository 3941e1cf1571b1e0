"""paths.png: the bytes that reached the peers each second, by path, in a run of the user's programs.

Direct (green) and relayed (purple) as in the ladder, local (cyan: peers on one LAN), summed over the run's pairs, with the moment
each pair's later first direct datagram arrived marked: the time from which the verdict's answer
is counted (lab.analysis.program_paths).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from lab.analysis.ladder import Channel
from lab.analysis.program_paths import DIRECT, LOCAL, RELAYED, ProgramPath
from lab.report.ladder_png import COLOURS

LOCAL_COLOUR = "#17becf"  # the local path (peers on one LAN): a hue the ladder does not use
PATH_COLOURS = {DIRECT: COLOURS[Channel.DIRECT], LOCAL: LOCAL_COLOUR, RELAYED: COLOURS[Channel.RELAY]}


def bytes_per_second(paths: list[ProgramPath]) -> dict[str, list[int]]:
    """Each path's bytes per second, summed over the pairs (their seconds share the run's start)."""
    length = max((len(series) for p in paths for series in p.per_second.values()), default=0)
    total = {path: [0] * length for path in PATH_COLOURS}
    for p in paths:
        for path, series in p.per_second.items():
            for second, size in enumerate(series):
                total[path][second] += size
    return total


def draw_paths(paths: list[ProgramPath], title: str, out: Path) -> Path:
    """Draw the bytes per second of each path into `out` (PNG) and return its path."""
    totals = bytes_per_second(paths)
    fig = Figure(figsize=(9, 3.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    for path, series in totals.items():
        ax.step(range(len(series)), series, where="post", color=PATH_COLOURS[path], lw=1.6,
                label=f"{path}: {sum(series)} B")
    firsts = [max(t for t in p.first_direct.values()) for p in paths if None not in p.first_direct.values()]
    for i, t in enumerate(firsts):
        ax.axvline(t, color=PATH_COLOURS[DIRECT], ls=":", lw=0.8, label="later first direct datagram" if i == 0 else None)
    ax.set_xlabel("seconds since the run's first packet")
    ax.set_ylabel("bytes reaching the peers per second")
    ax.set_title(title, fontsize=10)
    ax.grid(color="#eeeeee", lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    return out
