"""The traversal matrix as text: a grid per shape and link (rows: a's NAT, columns: b's NAT, or where a b
without one sits), one symbol per
cell for the path the pcaps showed, marked where it is not the one theory expects. The terminal
and matrix.md print the same grid; the legend says what each mark means."""

from __future__ import annotations

from lab.analysis.matrix import Cell, Matrix
from lab.report.terminal import table

SYMBOLS = {"direct": "D", "local": "L", "relayed": "R", "failed": "x", "mixed": "~"}
LEGEND = ("D direct, L local (on one LAN), R relayed, x failed (no path), ~ mixed over the runs; "
          "a cell not as theory expects is marked `!` with the expected path after it (D! want R), "
          "or with the verdict's checks its pair failed besides the path (D! check 5a); "
          "several runs add how many held (R 9/10)")


def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    text = SYMBOLS.get(cell.observed, "?")
    if cell.observed != cell.expected:
        text += f"! want {SYMBOLS.get(cell.expected, '?')}"
    if cell.failed_checks:
        text += f"! check {','.join(cell.failed_checks)}"
    if len(cell.observations) > 1:
        text += f" {cell.held}/{len(cell.observations)}"
    return text


def grid_rows(matrix: Matrix, shape: str, link: str, columns: tuple[str, ...]) -> list[list[str]]:
    return [[f"a: {a}", *(cell_text(matrix.cell(a, b, link, shape)) for b in columns)] for a in matrix.nats]


def grid_header(columns: tuple[str, ...]) -> list[str]:
    return ["a \\ b", *columns]


def grid_title(matrix: Matrix, shape: str, link: str) -> str:
    """What sets a grid apart from the matrix's others ("" when it has no others)."""
    parts = ([f"shape {shape}"] if len(matrix.shapes) > 1 else []) + ([f"link {link}"] if len(matrix.links) > 1 else [])
    return ", ".join(parts)


def subjects(matrix: Matrix) -> str:
    """Whose traversal the cells show: the lab's peers, or the user's programs."""
    if matrix.programs is None:
        return f"the lab's own peers; times since {matrix.clock}"
    commands = ", ".join(f"{side.upper()}='{command}'" for side, command in matrix.programs.items() if command)
    return f"your programs: {commands}; times since {matrix.clock}"


def summary(matrix: Matrix) -> str:
    bad = matrix.disagreements
    total = len(matrix.cells)
    if not bad:
        return f"all {total} cells as theory expects (relay {matrix.relay})"
    return f"{len(bad)}/{total} cells NOT as theory expects (relay {matrix.relay}): " + "; ".join(
        (f"{c.shape}: " if len(matrix.shapes) > 1 else "") + f"{c.nat_a} × {c.nat_b}"
        + (f" on {c.link}" if len(matrix.links) > 1 else "")
        + f": {c.observed}, expected {c.expected} ({c.reason})"
        + (f", failed check {', '.join(c.failed_checks)}" if c.failed_checks else "") for c in bad)


def terminal_grid(matrix: Matrix) -> str:
    parts = []
    for shape, link, columns in matrix.grids():
        parts.append(f"{title}:" if (title := grid_title(matrix, shape, link)) else "")
        parts.append(table(grid_rows(matrix, shape, link, columns), grid_header(columns)))
    return "\n".join(p for p in parts if p) + f"\n{LEGEND}\n{subjects(matrix)}\n{summary(matrix)}"


def markdown_grid(matrix: Matrix, title: str) -> str:
    from lab.report.markdown import markdown_table

    parts = [f"# {title}", f"**{summary(matrix)}**", subjects(matrix), LEGEND.replace("`!`", "**!**")]
    for shape, link, columns in matrix.grids():
        if title := grid_title(matrix, shape, link):
            parts.append(f"## {title[0].upper()}{title[1:]}")
        parts.append(markdown_table(grid_rows(matrix, shape, link, columns), grid_header(columns)))
    parts.append("Every cell's settings, expectation (with its reason), observation, times and the pair's "
                 "evidence are in `matrix.json`; `matrix.html` links each cell to them.")
    return "\n\n".join(parts) + "\n"
