"""ladder.png: the ladder of a run drawn to scale with matplotlib (Agg, no display needed).

Hosts are vertical lanes, time runs down. Every arrow of lab.analysis.ladder is drawn, coloured by the way
it travels (via the broker, direct path, control); a dropped datagram is a line that stops at the
router with a red cross. The controls take most of a run's seconds and the punch happens in a
fraction of one, so a second panel shows the rendezvous and punch enlarged, still to scale. Each
line of the story (lab.analysis.ladder.Step) is labelled once, in a column right of the lanes.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lab.analysis.ladder import Channel, Ladder, Step
from lab.analysis.packet_roles import PacketRole

COLOURS = {
    Channel.BROKER: "#1f77b4",
    Channel.DIRECT: "#2ca02c",
    Channel.RELAY: "#9467bd",
    Channel.CONTROL: "#7f7f7f",
    Channel.OTHER: "#bcbd22",
}
DROP = "#d62728"
INTRO = "#9467bd"
ZOOM_SHADE = "#fdf1c7"
LABEL_PT = 7.5
PANEL_HEIGHT_IN = 10.0
LANE_WIDTH_IN = 1.25
LABEL_COLUMN_IN = 4.6


def _windows(ladder: Ladder) -> list[tuple[str, float, float]]:
    """(title, start, end) of each panel: the whole run, then the rendezvous and punch if it is a
    small part of it."""
    end = max(a.arrived for a in ladder.arrows)
    windows = [("the whole run", 0.0, end)]
    registrations = [a.sent for a in ladder.arrows if a.role is PacketRole.REGISTRATION]
    if registrations and min(registrations) > 0.2 * end:
        windows.append(("rendezvous and punch, enlarged", min(registrations), end))
    return windows


def _spread(wanted: list[float], gap: float, low: float, high: float) -> list[float]:
    """Label positions as close to `wanted` (sorted) as possible, at least `gap` apart, within [low, high]."""
    placed: list[float] = []
    for y in wanted:
        placed.append(max(y, placed[-1] + gap) if placed else max(y, low))
    for i in range(len(placed) - 1, -1, -1):  # push back up whatever ran off the bottom
        limit = high if i == len(placed) - 1 else placed[i + 1] - gap
        placed[i] = min(placed[i], limit)
    return placed


def _draw_panel(ax, ladder: Ladder, title: str, start: float, end: float, labelled: list[Step]) -> None:
    x = {lane.node: i for i, lane in enumerate(ladder.lanes)}
    n = len(ladder.lanes)
    pad = max((end - start) * 0.03, 0.005)
    top, bottom = start - pad, end + pad
    label_x = n - 0.55
    ax.set_xlim(-0.6, label_x + LABEL_COLUMN_IN / LANE_WIDTH_IN)
    ax.set_ylim(bottom, top)
    ax.set_title(title, fontsize=10, pad=38)
    ax.set_ylabel("seconds since the run's first packet")
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#eeeeee", lw=0.6)
    for lane in ladder.lanes:
        ax.axvline(x[lane.node], color="#555555", lw=0.8, zorder=1)
        ax.text(x[lane.node], 1.005, f"{lane.node}\n" + "\n".join(lane.addresses), transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=7.5, fontweight="bold", linespacing=1.2)
    labels = [(s.first.sent, max(x[s.first.src], x[s.first.dst]), _step_text(s), _step_colour(s)) for s in labelled]
    if ladder.introduction is not None and top <= ladder.introduction <= bottom:
        ax.plot([-0.5, n - 1 + 0.3], [ladder.introduction] * 2, color=INTRO, ls="--", lw=1.0, zorder=2)
        text = f"+{ladder.introduction:.3f}s  introduction (the broker's last)"
        labels.append((ladder.introduction, n - 1, text, INTRO))
    for a in ladder.arrows:
        if not top <= a.sent <= bottom:
            continue
        colour = COLOURS[a.channel]
        x0, x1 = x[a.src], x[a.dst]
        if a.dropped:
            ax.plot([x0, x1], [a.sent, a.arrived], color=colour, lw=0.9, alpha=0.85, zorder=3)
            ax.plot([x1], [a.arrived], marker="x", color=DROP, ms=6, mew=1.6, zorder=4)
        else:
            ax.annotate("", xy=(x1, a.arrived), xytext=(x0, a.sent), zorder=3,
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=0.9, alpha=0.85,
                                        shrinkA=0, shrinkB=0, mutation_scale=9))
    _label(ax, sorted(labels, key=lambda item: item[0]), label_x, top, bottom)


def _step_text(step: Step) -> str:
    a = step.first
    return f"+{a.sent:.3f}s  {a.src} → {a.dst}: {step.label}"


def _step_colour(step: Step) -> str:
    return DROP if step.first.dropped else COLOURS[step.first.channel]


def _label(ax, labels: list[tuple[float, float, str, str]], label_x: float, top: float, bottom: float) -> None:
    """Write (time, lane x, text, colour) labels in the column right of the lanes, each joined to
    its place on the ladder by a thin line, spread so that none overlap."""
    if not labels:
        return
    height_in = ax.get_position().height * ax.figure.get_figheight()
    gap = (bottom - top) * (LABEL_PT * 1.45 / 72) / height_in
    spread = _spread([t for t, *_ in labels], gap, top + gap / 2, bottom - gap / 2)
    for (t, lane_x, text, colour), y in zip(labels, spread):
        ax.plot([lane_x + 0.08, label_x - 0.05], [t, y], color="#bbbbbb", lw=0.5, zorder=2)
        ax.text(label_x, y, text, fontsize=LABEL_PT, va="center", ha="left", color=colour)


def _legend(fig: Figure, ladder: Ladder) -> None:
    """A legend of what the ladder shows: its arrows' ways, drops, the introduction."""
    flows = ladder.unit == "flows"
    meaning = {
        Channel.BROKER: "to the broker: STUN" if flows else "via the broker: registration, introduction",
        Channel.DIRECT: "between the peers" if flows else "direct path: probes, data",
        Channel.RELAY: "through the relay or the WAN host" if flows else "via the relay: TURN, relayed probes and data",
        Channel.CONTROL: "control experiments",
    }
    shown = {a.channel for a in ladder.arrows}
    handles = [Line2D([], [], color=COLOURS[c], lw=2, label=text) for c, text in meaning.items() if c in shown]
    if any(a.dropped for a in ladder.arrows):
        handles.append(Line2D([], [], color="#555555", marker="x", markeredgecolor=DROP, mew=1.6, lw=1,
                              label="dropped: the line stops at the router"))
    if ladder.introduction is not None:
        handles.append(Line2D([], [], color=INTRO, ls="--", lw=1, label="the broker's last introduction"))
    fig.legend(handles=handles, loc="lower center", ncol=max(1, min(len(handles), len(ladder.lanes) // 2 + 1)),
               fontsize=8, frameon=False)


def draw_ladder(ladder: Ladder, run_id: str, out: Path) -> Path:
    """Draw `ladder` into `out` (PNG) and return its path."""
    if not ladder.arrows:
        fig = Figure(figsize=(6, 2))
        fig.text(0.5, 0.5, f"run {run_id}: no {ladder.unit} in the captures", ha="center", va="center")
        fig.savefig(out)
        return out
    windows = _windows(ladder)
    width = len(ladder.lanes) * LANE_WIDTH_IN + LABEL_COLUMN_IN + 0.8
    fig = Figure(figsize=(width * len(windows), PANEL_HEIGHT_IN + 1.6), dpi=110)
    fig.subplots_adjust(left=0.5 / (width * len(windows)), right=0.995, top=0.86, bottom=0.06, wspace=0.12)
    fig.suptitle(f"run {run_id}: {len(ladder.arrows)} {ladder.unit} as the captures saw them", fontsize=12)
    steps = ladder.steps()
    for i, (title, start, end) in enumerate(windows):
        ax = fig.add_subplot(1, len(windows), i + 1)
        later = windows[i + 1][1] if i + 1 < len(windows) else None
        labelled = [s for s in steps if start <= s.first.sent <= end and (later is None or s.first.sent < later)]
        _draw_panel(ax, ladder, title, start, end, labelled)
        if later is not None:
            ax.axhspan(later, end, color=ZOOM_SHADE, zorder=0)
            ax.text(-0.55, later, "enlarged on the right →", fontsize=7.5, va="top", ha="left", color="#8a6d00")
    _legend(fig, ladder)
    fig.savefig(out)
    return out
