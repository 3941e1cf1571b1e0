"""The traversal matrix's files, written into its directory: matrix.json, matrix.md, matrix.html and
matrix.png, all from the cells lab.analysis.matrix read off the runs' pcaps."""

from __future__ import annotations

import json
from pathlib import Path

from lab.analysis.matrix import Matrix
from lab.report.matrix_html import render_html
from lab.report.matrix_text import markdown_grid

FILES = ("matrix.json", "matrix.md", "matrix.html", "matrix.png")


def write_matrix(matrix: Matrix, directory: Path) -> list[Path]:
    from lab.report.matrix_png import draw_matrix  # matplotlib: loaded only where it draws

    title = f"natlab traversal matrix {directory.name}"
    json_path, md, html, png = (directory / name for name in FILES)
    json_path.write_text(json.dumps(matrix.to_json(), indent=2) + "\n")
    md.write_text(markdown_grid(matrix, title))
    html.write_text(render_html(matrix, title))
    draw_matrix(matrix, title, png)
    return [json_path, md, html, png]
