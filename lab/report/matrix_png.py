"""matrix.png: the traversal matrix as a picture, a grid per link coloured as matrix.html."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lab.analysis.matrix import Matrix
from lab.report.matrix_html import COLOURS
from lab.report.matrix_text import cell_text, summary

CELL_IN = 1.1


def draw_matrix(matrix: Matrix, title: str, out: Path) -> Path:
    n, panels = len(matrix.nats), len(matrix.links)
    fig = Figure(figsize=(panels * (n * CELL_IN + 2.2), n * CELL_IN + 2.0), dpi=100)
    fig.suptitle(f"{title}\n{summary(matrix)[:160]}", fontsize=10)
    for i, link in enumerate(matrix.links):
        ax = fig.add_subplot(1, panels, i + 1)
        ax.set_xlim(0, n)
        ax.set_ylim(n, 0)
        ax.set_aspect("equal")
        ax.set_xticks([j + 0.5 for j in range(n)], [f"b: {b}" for b in matrix.nats], rotation=30, ha="right",
                      fontsize=8)
        ax.set_yticks([j + 0.5 for j in range(n)], [f"a: {a}" for a in matrix.nats], fontsize=8)
        ax.set_title(f"link {link}", fontsize=9)
        for row, a in enumerate(matrix.nats):
            for col, b in enumerate(matrix.nats):
                cell = matrix.cell(a, b, link)
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
