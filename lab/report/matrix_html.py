"""matrix.html: the traversal matrix as one self-contained page (no script, no fetch).

Each grid (one per shape and link) colours its cells by the path the pcaps showed (the ladder's hues:
direct green, local teal, relayed purple, failed grey; mixed runs amber), and draws a red frame and a `!`
where that is not the path theory expects. A cell's tooltip has its settings, expectation and
reason, and time; its link goes to the cell's section below: each run's path and time, the
pair's lines of the verdict, and its ladder as text.
"""

from __future__ import annotations

import re
from html import escape

from lab.analysis.matrix import Cell, Matrix
from lab.report.matrix_text import LEGEND, SYMBOLS, cell_text, grid_title, subjects, summary

COLOURS = {"direct": "#2ca02c", "local": "#17becf", "relayed": "#9467bd", "failed": "#9e9e9e", "mixed": "#e6a700"}
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table.grid { border-collapse: collapse; margin: 1em 0; }
table.grid th, table.grid td { border: 1px solid #ccc; padding: 0.4em 0.7em; text-align: center; }
table.grid td a { color: #fff; font-weight: bold; text-decoration: none; display: block; }
td.disagree { outline: 3px solid #d62728; outline-offset: -3px; }
.legend span { display: inline-block; padding: 0.1em 0.6em; margin-right: 0.5em; color: #fff; }
section.cell { border-top: 1px solid #ddd; margin-top: 1.5em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
.bad { color: #d62728; font-weight: bold; }
"""


def anchor(cell: Cell) -> str:
    return "cell-" + "-".join(re.sub(r"[^A-Za-z0-9=,.-]+", "_", part) for part in cell.key)


def tooltip(cell: Cell, clock: str) -> str:
    time = f"{cell.seconds:.3f}s after {clock}" if cell.seconds is not None else "no time"
    return (f"{cell.shape}, a: {cell.nat_a}, b: {cell.nat_b}, link {cell.link}; expected {cell.expected} ({cell.reason}); "
            f"observed {cell.observed} in {len(cell.observations)} run(s); {time}")


def _grid(matrix: Matrix, shape: str, link: str, columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>b: {escape(b)}</th>" for b in columns)
    rows = []
    for a in matrix.nats:
        cells = []
        for b in columns:
            cell = matrix.cell(a, b, link, shape)
            if cell is None:
                cells.append("<td>-</td>")
                continue
            cls = ' class="disagree"' if not cell.agree else ""
            cells.append(f'<td{cls} style="background:{COLOURS.get(cell.observed, "#555")}" '
                         f'data-observed="{cell.observed}" data-expected="{cell.expected}" '
                         f'title="{escape(tooltip(cell, matrix.clock))}"><a href="#{anchor(cell)}">{escape(cell_text(cell))}</a></td>')
        rows.append(f"<tr><th>a: {escape(a)}</th>{''.join(cells)}</tr>")
    title = grid_title(matrix, shape, link)
    caption = f"<caption>{escape(title)}</caption>" if title else ""
    return f'<table class="grid">{caption}<tr><th>a \\ b</th>{head}</tr>{"".join(rows)}</table>'


def _section(cell: Cell, clock: str) -> str:
    verdict = ("as theory expects" if cell.agree
               else f'<span class="bad">NOT as theory expects: {escape(cell.expected)}</span>')
    runs = []
    for o in cell.observations:
        time = f"{o.seconds:.3f}s after {clock}" if o.seconds is not None else "no time"
        ended = f"<p>{escape('; '.join(o.programs))}</p>" if o.programs else ""
        runs.append(f"<h4>run {escape(o.run_id)}, pair {o.pair}: {escape(o.path)}, {time}</h4>{ended}"
                    f"<pre>{escape(chr(10).join(o.evidence) or 'no evidence lines')}</pre>"
                    f"<details><summary>ladder</summary><pre>{escape(chr(10).join(o.ladder))}</pre></details>")
    return (f'<section class="cell" id="{anchor(cell)}"><h3>{escape(cell.shape)}, a: {escape(cell.nat_a)} × b: {escape(cell.nat_b)}, '
            f"link {escape(cell.link)}: {escape(cell.observed)}, {verdict}</h3>"
            f"<p>Theory: {escape(cell.expected)} ({escape(cell.reason)}).</p>{''.join(runs)}</section>")


def render_html(matrix: Matrix, title: str) -> str:
    legend = "".join(f'<span style="background:{COLOURS[p]}">{SYMBOLS[p]} {p}</span>' for p in COLOURS)
    grids = "".join(_grid(matrix, *grid) for grid in matrix.grids())
    sections = "".join(_section(c, matrix.clock) for c in matrix.cells.values())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<p id="summary">{escape(summary(matrix))}</p><p id="subjects">{escape(subjects(matrix))}</p>'
            f'<p class="legend">{legend}</p><p>{escape(LEGEND)}</p>'
            f"{grids}<h2>Cells</h2>{sections}</body></html>\n")
