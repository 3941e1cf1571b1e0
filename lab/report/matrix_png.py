"""matrix.png: the traversal matrix as a picture, a grid per shape and link coloured as matrix.html."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lab.analysis.matrix import Matrix
from lab.report.matrix_html import COLOURS
from lab.report.matrix_text import cell_text, grid_title, summary

CELL_IN = 1.1


def draw_matrix(matrix: Matrix, title: str, out: Path) -> Path:
    grids = matrix.grids()
    n, widths = len(matrix.nats), [len(columns) for _, _, columns in grids]
    fig = Figure(figsize=(sum(w * CELL_IN + 2.2 for w in widths), n * CELL_IN + 2.0), dpi=100)
    fig.suptitle(f"{title}\n{summary(matrix)[:160]}", fontsize=10)
    axes = fig.subplots(1, len(grids), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
    for ax, (shape, link, columns) in zip(axes, grids):
        m = len(columns)
        ax.set_xlim(0, m)
        ax.set_ylim(n, 0)
        ax.set_aspect("equal")
        ax.set_xticks([j + 0.5 for j in range(m)], [f"b: {b}" for b in columns], rotation=30, ha="right",
                      fontsize=8)
        ax.set_yticks([j + 0.5 for j in range(n)], [f"a: {a}" for a in matrix.nats], fontsize=8)
        ax.set_title(grid_title(matrix, shape, link) or f"link {link}", fontsize=9)
        for row, a in enumerate(matrix.nats):
            for col, b in enumerate(columns):
                cell = matrix.cell(a, b, link, shape)
                if cell is None:
                    continue
                ax.add_patch(Rectangle((col, row), 1, 1, facecolor=COLOURS.get(cell.observed, "#555555"),
                                       edgecolor="#d62728" if not cell.agree else "white",
                                       linewidth=3 if not cell.agree else 1))
                ax.text(col + 0.5, row + 0.5, cell_text(cell).replace(" want", "\nwant"), ha="center",
                        va="center", color="white", fontsize=8, fontweight="bold")
    fig.tight_layout()
    fig.savefig(out)
    return out
