"""Files people download: the one CSV cell guard and the one Content-Disposition header.

In CSV, a text cell (or column name) that a spreadsheet would run as a formula, one starting
with =, +, -, @, a tab or a carriage return, gets a leading single quote (OWASP's rule against
CSV injection: file names and metadata come from third-party manifests). The admin export and
the search's CSV both write through here.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    import pandas as pd

# First characters that make a spreadsheet treat a CSV cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """Return a CSV cell value; text a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, (dict, list)):
        value = str(value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_line(cells: Iterable) -> str:
    """Return one CSV line (CRLF, RFC 4180) of cells, each made safe."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(cell) for cell in cells])
    return buffer.getvalue()


def frame_csv(frame: pd.DataFrame) -> str:
    """Return frame as CSV text whose text cells and column names cannot start a formula."""
    import pandas as pd  # ~0.4 s to import: only where a frame is written
    frame = frame.copy()
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            frame.isetitem(position, column.map(safe_cell))
    frame.columns = [safe_cell(str(name)) for name in frame.columns]
    # CRLF line ends (RFC 4180) make the writer quote a cell holding a bare carriage return,
    # which would otherwise start a new row (and maybe a formula) in a spreadsheet.
    return frame.to_csv(index=False, lineterminator="\r\n")


def _safe_stem(text: str) -> str:
    """Return text with every character but letters, digits, '-' and '_' made '_'."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def attachment(stem: str, suffix: str, fallback_stem: str) -> str:
    """Return the Content-Disposition of a download called stem + suffix ('-labels.csv').

    stem (a project's name) may hold any letters, but headers are Latin-1: the plain filename
    is an ASCII form of it (fallback_stem when nothing of it is ASCII), and RFC 5987's
    filename* carries the Unicode name when the two differ.
    """
    name = _safe_stem(stem) + suffix
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    fallback = (_safe_stem(ascii_stem).strip("_") or fallback_stem) + suffix
    if name == fallback:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
