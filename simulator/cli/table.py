"""Column alignment as the docker CLI does it: its copy of Go's text/tabwriter, created with
minwidth 10, tabwidth 1, padding 3 and spaces, plus the display widths and the "…" truncation
the CLI applies to cells."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

MIN_WIDTH = 10
PADDING = 3
ELLIPSIS = "…"


def rune_width(ch: str) -> int:
    """Terminal cells one character takes, as go-runewidth counts them (non-East-Asian locale):
    0 for control and combining characters, 2 for wide and fullwidth ones, else 1."""
    code = ord(ch)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return 0
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """go-runewidth's StringWidth: the width the tabwriter gives a cell."""
    return sum(rune_width(ch) for ch in text)


def _ellipsis_char_width(ch: str) -> int:
    # golang.org/x/text/width: only East Asian Wide and Fullwidth count double.
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def ellipsis(text: str, max_width: int) -> str:
    """The CLI's formatter.Ellipsis: cut text to max_width display columns, the last one "…"."""
    if max_width <= 0:
        return ""
    if max_width == 1:
        return text[:1]
    if all(ord(ch) < 0x80 for ch in text):
        return text if len(text) <= max_width else text[: max_width - 1] + ELLIPSIS
    ends: list[int] = []
    total = 0
    for ch in text:
        total += _ellipsis_char_width(ch)
        ends.append(total)
    if total <= max_width:
        return text
    for index in range(len(ends) - 1):
        if ends[index] <= max_width - 1 < ends[index + 1]:
            return text[: index + 1] + ELLIPSIS
    return text


@dataclass
class _Cell:
    text: str
    width: int
    tab_terminated: bool


def _split_cells(text: str) -> list[list[_Cell]]:
    """Lines of cells: a tab (or vertical tab) ends a cell, a newline (or form feed) a line.
    The text after a line's last tab is its trailing cell, which no column aligns."""
    lines: list[list[_Cell]] = [[]]
    current: list[str] = []
    for ch in text:
        if ch in "\t\v\n\f":
            cell_text = "".join(current)
            lines[-1].append(_Cell(cell_text, display_width(cell_text), ch == "\t"))
            current = []
            if ch in "\n\f":
                lines.append([])
        else:
            current.append(ch)
    if current:
        cell_text = "".join(current)
        lines[-1].append(_Cell(cell_text, display_width(cell_text), False))
    return lines


def align_columns(
    text: str, min_width: int = MIN_WIDTH, padding: int = PADDING, pad_char: str = " "
) -> str:
    """Go's tabwriter (left-aligned, no flags): each column block (consecutive lines that have a
    cell in that column) gets the width of its widest cell plus padding, at least min_width."""
    lines = _split_cells(text)
    out: list[str] = []
    widths: list[int] = []

    def write_lines(first: int, last: int) -> None:
        for index in range(first, last):
            for column, cell in enumerate(lines[index]):
                out.append(cell.text)
                if column < len(widths):
                    out.append(pad_char * (widths[column] - cell.width))
            if index + 1 < len(lines):
                out.append("\n")

    def format_block(first: int, last: int) -> None:
        column = len(widths)
        line = first
        while line < last:
            if column >= len(lines[line]) - 1:
                line += 1
                continue
            write_lines(first, line)
            first = line
            width = min_width
            while line < last and column < len(lines[line]) - 1:
                width = max(width, lines[line][column].width + padding)
                line += 1
            widths.append(width)
            format_block(first, line)
            widths.pop()
            first = line
        write_lines(first, last)

    format_block(0, len(lines))
    return "".join(out)
