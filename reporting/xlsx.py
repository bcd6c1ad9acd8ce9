"""The report workbook: Summary (with a chart), then tables: every case (streamed), nodes, changes since the
previous run, flaky cases and failure groups, each with its column widths and a filter on every column.

Written in openpyxl's write-only mode, so 100,000 cases go through in constant memory. Text that people
wrote (task and case names) is cleaned of what a spreadsheet cannot hold and always written as text: a case
called `=HYPERLINK("http://...")` is shown, never evaluated.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter


@dataclass(frozen=True)
class Table:
    """A sheet of rows under a header, each column (title, width in characters), with a filter on every column."""

    title: str
    columns: list[tuple[str, int]]
    rows: Iterable[Sequence[object]]


# A string openpyxl would store as a formula ("=...") or an error ("#N/A") must be forced to text.
_READ_AS_MORE_THAN_TEXT = "="


def _naive_utc(value: datetime | None) -> datetime | None:
    # Excel has no time zones: write UTC wall-clock time and say so in the header.
    return value.replace(tzinfo=None) if value else None


def _text(sheet, value: str | None) -> Cell | None:
    """A cell that holds `value` as plain text: never a formula, never a character Excel refuses."""
    if value is None:
        return None
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    cell.data_type = "s"
    return cell


def _value(sheet, value):
    if isinstance(value, str):
        if not value:
            return None
        if value[0] in _READ_AS_MORE_THAN_TEXT or value in ERROR_CODES or ILLEGAL_CHARACTERS_RE.search(value):
            return _text(sheet, value)
        return value  # plain text already: openpyxl writes it as a string (the cheap path, for 100,000 rows)
    return _naive_utc(value) if isinstance(value, datetime) else value


def _header(sheet, titles: list[str]) -> None:
    cells = []
    for title in titles:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = Font(bold=True)
        cells.append(cell)
    sheet.append(cells)


def _table(workbook: Workbook, table: Table) -> None:
    sheet = workbook.create_sheet(table.title)
    for number, (_, width) in enumerate(table.columns, 1):
        sheet.column_dimensions[get_column_letter(number)].width = width
    _header(sheet, [title for title, _ in table.columns])
    rows = 1
    for row in table.rows:
        sheet.append([_value(sheet, value) for value in row])
        rows += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{rows}"


def write_workbook(
    path: Path, *, summary: list[tuple[str, object]], counts: list[tuple[str, int]], tables: list[Table]
) -> None:
    """Summary (with a chart of the counts), then each table on a sheet of its own."""
    workbook = Workbook(write_only=True)

    sheet = workbook.create_sheet("Summary")
    sheet.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 60
    for label, value in summary:
        sheet.append([label, _value(sheet, value)])
    sheet.append([])
    first_count_row = len(summary) + 2
    _header(sheet, ["status", "cases"])
    for status, count in counts:
        sheet.append([status, count])
    chart = BarChart()
    chart.title = "Cases by status"
    chart.y_axis.title = "cases"
    chart.legend = None
    data = Reference(sheet, min_col=2, min_row=first_count_row, max_row=first_count_row + len(counts))
    chart.add_data(data, titles_from_data=True)
    last_row = first_count_row + len(counts)
    chart.set_categories(Reference(sheet, min_col=1, min_row=first_count_row + 1, max_row=last_row))
    sheet.add_chart(chart, "D2")
    sheet.auto_filter.ref = f"A{first_count_row}:B{last_row}"

    for table in tables:
        _table(workbook, table)
    workbook.save(path)
