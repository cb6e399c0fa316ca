"""CSV files as an import reads them: encoding and delimiter detected, rows streamed by line.

Nothing here holds a whole file in memory: the encoding is found by decoding the file block by
block, the delimiter from its first lines, and rows are yielded one at a time with the line
they start on, so a report can name the line a user sees in a text editor or a spreadsheet.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from campaigns.errors import ValidationError

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
BLOCK = 1 << 20
SAMPLE_LINES = 50


@dataclass(frozen=True, slots=True)
class CsvFormat:
    """How a file is written: its text encoding, delimiter, header, and about how many rows."""

    encoding: str
    delimiter: str
    header: tuple[str, ...]
    approx_rows: int  # data lines counted as newlines; quoted line breaks make it an estimate


def inspect(path: Path) -> CsvFormat:
    """Detect the encoding and delimiter of a CSV file and read its header row."""
    encoding, newlines, size = _encoding_and_lines(path)
    if size == 0:
        raise ValidationError("the file is empty", field="file")
    with path.open(encoding=encoding, newline="") as text:
        sample = [line for _, line in zip(range(SAMPLE_LINES), text, strict=False)]
    delimiter = detect_delimiter(sample)
    names = header(path, encoding, delimiter)
    return CsvFormat(encoding, delimiter, names, max(newlines - 1, 0))


def _encoding_and_lines(path: Path) -> tuple[str, int, int]:
    """UTF-8 (with or without BOM) when every byte decodes as such; UTF-16 after its BOM (what
    Excel's "Unicode Text" writes); else cp1252 or Latin-1. A file with NUL bytes and no
    UTF-16 BOM is not text: refused, saying what to do."""
    newlines = size = 0
    utf8 = True
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as raw:
        start = raw.read(BLOCK)
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return _utf16(path, start)
        nul = start.find(b"\0")
        if nul >= 0:
            raise ValidationError(
                f"the file is not text (byte {nul + 1:,} is a NUL byte): save it "
                "from your spreadsheet as CSV (comma- or semicolon-separated) and upload that",
                field="file",
            )
        bom = start.startswith(codecs.BOM_UTF8)
        raw.seek(0)
        last = b""
        for block in iter(lambda: raw.read(BLOCK), b""):
            size += len(block)
            newlines += block.count(b"\n")
            last = block
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if last and not last.endswith(b"\n"):
        newlines += 1  # the last line has no line break
    if utf8:
        return ("utf-8-sig" if bom else "utf-8"), newlines, size
    # Spreadsheets on Windows write cp1252; the five bytes it leaves undefined only Latin-1 reads.
    return ("cp1252" if _decodes(path, "cp1252") else "latin-1"), newlines, size


def _utf16(path: Path, start: bytes) -> tuple[str, int, int]:
    """A UTF-16 file's encoding, lines and size; refused if it does not decode as such."""
    if not _decodes(path, "utf-16"):
        raise ValidationError("the file starts like UTF-16 text but does not decode as such: "
                              "save it as CSV (UTF-8) and upload that", field="file")  # fmt: skip
    newline = "\n".encode("utf-16-le" if start.startswith(codecs.BOM_UTF16_LE) else "utf-16-be")
    newlines = size = 0
    last = b""
    with path.open("rb") as raw:
        for block in iter(lambda: raw.read(BLOCK), b""):  # BLOCK is even: no character split
            size += len(block)
            newlines += block.count(newline)  # an estimate, as for every file
            last = block
    if not last.endswith(newline):
        newlines += 1  # the last line has no line break
    return "utf-16", newlines, size


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as raw:
        try:
            for block in iter(lambda: raw.read(BLOCK), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_delimiter(lines: list[str]) -> str:
    """Pick the delimiter that splits the first lines into the same number of fields, most."""
    if len(lines) > 1 and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # a sample cut mid-line would count one field short
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        except csv.Error:  # e.g. a value past the field limit: not this delimiter's doing
            continue
        if not widths or widths[0] < 2:
            continue
        agreeing = sum(1 for width in widths if width == widths[0])
        score = (agreeing, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def header(path: Path, encoding: str, delimiter: str) -> tuple[str, ...]:
    """Read the header row: the first non-blank row; every column named, none twice."""
    with path.open(encoding=encoding, newline="") as text:
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        except csv.Error as exc:
            raise _unreadable(reader.line_num, exc) from None
    if header is None:
        raise ValidationError("the file has no header row", field="file")
    names = tuple(cell.strip() for cell in header)
    seen: set[str] = set()
    for number, name in enumerate(names, start=1):
        if not name:
            raise ValidationError(
                f"column {number} of the header row has no name; give every column a name",
                field="file",
            )
        if name.lower() in seen:
            raise ValidationError(
                f"the header names the column {name!r} twice; rename one of them", field="file"
            )
        seen.add(name.lower())
    return names


def rows(path: Path, fmt: CsvFormat) -> Iterator[tuple[int, list[str]]]:
    """Yield each data row after the header with the line it starts on; blank lines skipped.

    A line the CSV reader cannot read (a NUL byte, an unclosed quote at the end) raises
    ValidationError naming the line.
    """
    with path.open(encoding=fmt.encoding, newline="") as text:
        reader = csv.reader(text, delimiter=fmt.delimiter)
        seen_header = False
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _unreadable(reader.line_num, exc) from None
            start, line = line, reader.line_num + 1
            if not row or not any(cell.strip() for cell in row):
                continue
            if not seen_header:
                seen_header = True
                continue
            yield start, row


def _unreadable(line: int, exc: csv.Error) -> ValidationError:
    """The CSV reader's refusal as a message naming the line and what to look for."""
    reason = str(exc)
    if "field larger than field limit" in reason:
        reason = (f"a value runs past {csv.field_size_limit():,} characters; most often a quote "
                  '(") opens a value and never closes, so the lines after it become one '
                  "value")  # fmt: skip
    return ValidationError(f"line {line}: the file cannot be read as CSV ({reason})", field="file")


def unclosed_quote_hint(row: list[str]) -> str:
    """For a row of the wrong width: a hint when one of its values spans lines (a quote that
    never closed swallows the lines after it), else ""."""
    spanned = sum(cell.count("\n") for cell in row)
    if not spanned:
        return ""
    return (
        f'; a quote (") opens a value that runs over the next {spanned} line'
        f"{'s' if spanned > 1 else ''}: look for a quote that is never closed"
    )


def neutral(value: str) -> str:
    """An exported cell a spreadsheet will not run as a formula (RELIABILITY.md 29)."""
    if value and value[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
