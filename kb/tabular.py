"""Reading and writing the knowledge-base spreadsheet (CSV and XLSX); no database here.

A file is a header row and one entry per row. Rows are numbered as a spreadsheet shows them
(the header is row 1), so an operator can find a reported row in Excel or WPS at once.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from django.utils.translation import gettext as _

FORMATS = ("csv", "xlsx")
COLUMNS = ("question", "answer", "tags", "enabled")
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 20_000

# Operators often keep the Chinese headers of their own sheets: accept both.
HEADER_ALIASES = {
    "question": ("question", "title", "问题", "标题", "问题/标题"),
    "answer": ("answer", "reply", "答案", "回答", "回复", "答复"),
    "tags": ("tags", "tag", "标签", "关键词"),
    "enabled": ("enabled", "enable", "active", "启用", "是否启用", "状态"),
}
_HEADER_TO_COLUMN = {alias.lower(): column for column, aliases in HEADER_ALIASES.items() for alias in aliases}

# Spreadsheet formula injection: a cell starting with one of these runs as a formula when the
# exported CSV is opened in Excel. We prefix a quote on export and drop it again on import.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class FileRejected(Exception):
    """The file as a whole cannot be read (format, encoding, header, size); nothing was imported."""


@dataclass(frozen=True)
class ImportRow:
    number: int  # as the spreadsheet shows it; the header is row 1
    values: Mapping[str, object] = field(default_factory=dict)


def file_format_of(filename: str) -> str:
    suffix = PurePath(filename or "").suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise FileRejected(_("Upload a .csv or .xlsx file."))
    return suffix


def read_rows(*, content: bytes, file_format: str) -> list[ImportRow]:
    if len(content) > MAX_FILE_BYTES:
        raise FileRejected(_("The file is larger than %(size)d MB.") % {"size": MAX_FILE_BYTES // (1024 * 1024)})
    table = _csv_table(content) if file_format == "csv" else _xlsx_table(content)
    return _rows_from_table(table, unquote=file_format == "csv")


def _decode(content: bytes) -> str:
    # Excel saves "CSV UTF-8" with a BOM, WPS and older Excel on Chinese Windows save GBK;
    # GB18030 is the superset of GBK, so it also reads the rarer characters.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileRejected(_("The CSV file is neither UTF-8 nor GBK encoded."))


def _csv_table(content: bytes) -> Iterator[Sequence[object]]:
    text = _decode(content)
    if "\x00" in text:
        raise FileRejected(_("This does not look like a CSV file."))
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FileRejected(_("The CSV file is malformed: %(error)s") % {"error": exc}) from exc
    return iter(rows)


def _xlsx_table(content: bytes) -> Iterator[Sequence[object]]:
    # openpyxl loads here, not at start-up: most processes never read or write a spreadsheet.
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise FileRejected(_("This is not a valid .xlsx file.")) from exc
    try:
        sheet = workbook.worksheets[0]
        return iter([list(row) for row in sheet.iter_rows(values_only=True)])
    finally:
        workbook.close()


def _cell(value: object, *, unquote: bool) -> object:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a numeric question cell such as 12345 comes back as 12345.0
    if isinstance(value, bool) or value is None:
        return value
    text = str(value)
    if unquote and text.startswith("'") and text[1:2] and text[1] in _FORMULA_STARTS:
        return text[1:]
    return text


def _rows_from_table(table: Iterator[Sequence[object]], *, unquote: bool) -> list[ImportRow]:
    header = next(table, None)
    if not header:
        raise FileRejected(_("The file is empty."))
    positions: dict[str, int] = {}
    for index, title in enumerate(header):
        column = _HEADER_TO_COLUMN.get(str(title or "").strip().lower())
        if column and column not in positions:
            positions[column] = index
    missing = [column for column in ("question", "answer") if column not in positions]
    if missing:
        raise FileRejected(_("The first row must name the columns; missing: %(columns)s.")
                           % {"columns": ", ".join(missing)})
    rows = []
    for number, cells in enumerate(table, start=2):
        values = {column: _cell(cells[index], unquote=unquote) if index < len(cells) else None
                  for column, index in positions.items()}
        if all(value is None or str(value).strip() == "" for value in values.values()):
            continue  # blank lines at the end of a sheet are not entries
        if len(rows) >= MAX_ROWS:
            raise FileRejected(_("The file has more than %(max)d rows.") % {"max": MAX_ROWS})
        rows.append(ImportRow(number=number, values=values))
    if not rows:
        raise FileRejected(_("The file has no entries below the header row."))
    return rows


def _quoted(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(records: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a BOM: without it, Excel on Chinese Windows reads the file as GBK and garbles it."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for record in records:
        writer.writerow([_quoted(value) for value in record])
    return buffer.getvalue().encode("utf-8-sig")


def write_xlsx(records: Iterable[Sequence[object]]) -> bytes:
    # Loaded here for the same reason as in _xlsx_table.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("knowledge")
    sheet.append(list(COLUMNS))
    for record in records:
        cells = []
        for value in record:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # openpyxl would store "=..." as a formula
            cells.append(cell)
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
