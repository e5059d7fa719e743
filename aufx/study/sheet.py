"""The contact sheet: every stimulus of a set on one labelled page, to check a set at a glance before a study.

Rows are identities, columns conditions x intensities (x engines); it shows every image the manifest lists, including
those finished by an earlier, interrupted run.
"""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from aufx.study.stimulus_config import SheetLayout

PAD = 2  # pixels between a thumbnail and its cell's edge
INK, PAPER = (0, 0, 0), (255, 255, 255)


def sheet_size(rows: int, cols: int, layout: SheetLayout) -> tuple[int, int]:
    """(width, height) of a sheet in pixels."""
    return layout.label_width + cols * layout.cell, layout.header_height + rows * layout.cell


def thumbnail(rgb: np.ndarray, cell: int) -> np.ndarray:
    """The image fitted into a sheet cell (aspect kept), made when a stimulus is rendered so the sheet need not
    decode every file again."""
    h, w = rgb.shape[:2]
    scale = (cell - 2 * PAD) / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def contact_sheet(grid: list[tuple[str, list[np.ndarray | None]]], column_labels: list[str],
                  layout: SheetLayout) -> np.ndarray:
    """``grid``: (row label, one thumbnail or None per column) per row. Returns the sheet as RGB uint8."""
    sheet = Image.new("RGB", sheet_size(len(grid), len(column_labels), layout), PAPER)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=layout.font_size)
    cell, left, top = layout.cell, layout.label_width, layout.header_height
    for c, label in enumerate(column_labels):
        _label(draw, font, label, (left + c * cell, 0, left + (c + 1) * cell, top))
    for r, (name, thumbs) in enumerate(grid):
        y = top + r * cell
        _label(draw, font, name, (0, y, left, y + cell))
        for c, thumb in enumerate(thumbs):
            if thumb is not None:
                h, w = thumb.shape[:2]
                sheet.paste(Image.fromarray(thumb), (left + c * cell + (cell - w) // 2, y + (cell - h) // 2))
    return np.asarray(sheet)


def _label(draw: ImageDraw.ImageDraw, font, text: str, box: tuple[int, int, int, int]) -> None:
    """Centre each line of ``text`` in ``box``, shortening lines that do not fit."""
    x0, y0, x1, y1 = box
    lines = [_fit(draw, font, line, x1 - x0 - 2 * PAD) for line in text.split("\n")]
    height = font.size + 2
    y = y0 + (y1 - y0 - height * len(lines)) // 2
    for line in lines:
        draw.text(((x0 + x1) // 2, y + height // 2), line, fill=INK, font=font, anchor="mm")
        y += height


def _fit(draw: ImageDraw.ImageDraw, font, line: str, width: int) -> str:
    if draw.textlength(line, font=font) <= width:
        return line
    while line and draw.textlength(line + "…", font=font) > width:
        line = line[:-1]
    return line + "…"
