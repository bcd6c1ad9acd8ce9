"""The report workbook: Summary (with a chart), Cases (every case, streamed) and Nodes.

Written in openpyxl's write-only mode, so 100,000 cases go through in constant memory. Text that people
wrote (task and case names) is cleaned of what a spreadsheet cannot hold and always written as text: a case
called `=HYPERLINK("http://...")` is shown, never evaluated.
"""

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font

CASE_COLUMNS = ["case", "status", "node", "started (UTC)", "finished (UTC)", "duration (s)", "exit code", "attempts"]
_NODE_KEYS = ("node", "total", "passed", "failed", "errors", "success_rate", "mean_duration")
NODE_COLUMNS = ["node", "total", "passed", "failed", "errors", "success rate (%)", "mean duration (s)"]


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
        return _text(sheet, value)
    return _naive_utc(value) if isinstance(value, datetime) else value


def _header(sheet, titles: list[str]) -> None:
    cells = []
    for title in titles:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = Font(bold=True)
        cells.append(cell)
    sheet.append(cells)


def write_workbook(
    path: Path,
    *,
    summary: list[tuple[str, object]],
    counts: list[tuple[str, int]],
    cases: Iterable[tuple],
    nodes: list[dict],
) -> None:
    workbook = Workbook(write_only=True)

    sheet = workbook.create_sheet("Summary")
    sheet.column_dimensions["A"].width = 22
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

    sheet = workbook.create_sheet("Cases")
    _header(sheet, CASE_COLUMNS)
    for name, status, node, started, finished, exit_code, attempts in cases:
        duration = round((finished - started).total_seconds(), 3) if started and finished else None
        sheet.append(
            [_text(sheet, name), status, node, _naive_utc(started), _naive_utc(finished), duration, exit_code, attempts]
        )

    sheet = workbook.create_sheet("Nodes")
    _header(sheet, NODE_COLUMNS)
    for row in nodes:
        sheet.append([_value(sheet, row[key]) for key in _NODE_KEYS])

    workbook.save(path)
