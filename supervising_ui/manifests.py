"""Manifest CSVs: one row per file, a 'filename' column, an optional 'label', metadata columns.

Metadata values are typed (integers and decimals become numbers) so that the catalog can
compare and sort them; anything that only looks like a number (leading zeros, huge integers,
decimals too large for a float such as 1e400) stays text, so that no infinity or NaN is ever
stored (JSON has none). A row holding a NUL character (in a cell, or in the name of a column
it fills) is reported with its reason: no database can store the character.
"""
import csv
import io
import math
import re

FILENAME_COLUMN = "filename"
LABEL_COLUMN = "label"
_INTEGER = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_DECIMAL = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9]")
_LARGEST_EXACT_INTEGER = 2**53  # larger integers lose digits in JavaScript: keep them as text


class ManifestError(ValueError):
    """A manifest CSV that cannot be read as a whole (encoding, header)."""


def typed_value(text: str):
    """Return text as an int or float where it looks like a number, else the stripped text."""
    text = text.strip()
    if _INTEGER.match(text):
        number = int(text)
        return number if abs(number) <= _LARGEST_EXACT_INTEGER else text
    if _DECIMAL.match(text) and not _LEADING_ZERO.match(text.split(".")[0] or "x"):
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def read_table(data: bytes) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Decode manifest CSV bytes into its header and (line number, raw values) rows.

    The one reader of manifests (the importer and the ``ml`` commands): UTF-8 with or without
    a byte-order mark, a 'filename' column in any letter case, no repeated columns; blank
    lines are dropped. Raises ManifestError saying what is wrong with the file as a whole.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"manifest is not UTF-8 text (bad byte at position {error.start}): "
                            "save it as CSV UTF-8") from error
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise ManifestError(f"manifest is not a readable CSV file ({error})") from error
    if not rows:
        raise ManifestError("manifest is empty")
    header = [name.strip() for name in rows[0]]
    lowered = [name.lower() for name in header]
    if FILENAME_COLUMN not in lowered:
        shown = ", ".join(name.replace("\x00", "") for name in header)  # no NUL in a message
        raise ManifestError(f"manifest has no '{FILENAME_COLUMN}' column (its columns: "
                            f"{shown or 'none'})")
    repeated = sorted({name for name in lowered if name and lowered.count(name) > 1})
    if repeated:
        raise ManifestError("manifest columns repeat: "
                            + ", ".join(name.replace("\x00", "") for name in repeated))
    body = [(line_number, values) for line_number, values in enumerate(rows[1:], start=2)
            if any(value.strip() for value in values)]  # blank lines are not rows
    return header, body


def read_manifest(data: bytes) -> tuple[list[tuple[int, dict]], list[str]]:
    """Parse manifest CSV bytes into (line number, row) pairs and the metadata column names.

    Each row is {"filename", "label", "metadata", "error"}; a row with an error (wrong number
    of fields, no filename) is kept so that the caller can report it by line.
    """
    header, body = read_table(data)
    lowered = [name.lower() for name in header]
    records = [(line_number, _record(header, lowered, values)) for line_number, values in body]
    metadata_columns = [name for name, low in zip(header, lowered, strict=True)
                        if name and "\x00" not in name
                        and low not in (FILENAME_COLUMN, LABEL_COLUMN)]
    return records, metadata_columns


def _record(header: list[str], lowered: list[str], values: list[str]) -> dict:
    """Return one manifest row as {"filename", "label", "metadata", "error"}."""
    record = {"filename": "", "label": None, "metadata": {}, "error": None}
    if len(values) != len(header):
        record["error"] = f"has {len(values)} fields where the header has {len(header)}"
    unstorable = _unstorable_column(header, values)
    if unstorable is not None:
        record["error"] = (f"holds a NUL character (in column '{unstorable}'): "
                           "no database can store it")
        values = [value.replace("\x00", "") for value in values]  # the filename names the row
    # A row may have more or fewer fields than the header: that is reported, not refused.
    for name, low, value in zip(header, lowered, values, strict=False):
        if low == FILENAME_COLUMN:
            record["filename"] = value.strip().replace("\\", "/")
        elif low == LABEL_COLUMN:
            record["label"] = value.strip() or None
        elif name and value.strip():
            record["metadata"][name] = typed_value(value)
    if not record["filename"] and record["error"] is None:
        record["error"] = "has no filename"
    return record


def _unstorable_column(header: list[str], values: list[str]) -> str | None:
    """Return the name of the first column whose value or name (if filled) holds a NUL."""
    for position, value in enumerate(values):
        name = header[position] if position < len(header) else f"field {position + 1}"
        if "\x00" in value or ("\x00" in name and value.strip()):
            return name.replace("\x00", "")
    return None
