"""Tables exported for spreadsheets (导出表格): CSV and XLSX, the one way every service writes them.

What goes into these tables is partly typed by people the reader does not control: a youth's
Youth Voice title, a wish, an org's or a cadre's name. A spreadsheet program runs a cell that
starts with ``=`` as a formula (CSV injection: ``=HYPERLINK(…)`` in a title becomes a live link in
the admin's Excel), and openpyxl itself stores such a string as a formula. So text is always
text here: an XLSX cell is written as a string, and a CSV cell that a spreadsheet would read as
a formula gets a leading apostrophe (OWASP's advice; Excel and WPS show the rest as typed).

Times are written as the League reads them, in China standard time (with its offset in CSV; an
XLSX cell holds no time zone).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook

CHINA = ZoneInfo("Asia/Shanghai")
# What Excel, LibreOffice and WPS start a formula (or a DDE call) with.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")

XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA = "text/csv; charset=utf-8"


def _china(v: datetime) -> datetime:
    return v.astimezone(CHINA).replace(tzinfo=None) if v.tzinfo is not None else v


def csv_cell(v: Any) -> Any:
    """A value as a CSV cell that no spreadsheet runs."""
    if isinstance(v, datetime):
        return v.astimezone(CHINA).isoformat() if v.tzinfo is not None else v.isoformat()
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    return "" if v is None else v


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM, so that Excel opens Chinese text correctly."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue().encode("utf-8-sig")


def xlsx_bytes(sheet: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    ws.append(list(header))
    for row in rows:
        ws.append([_china(v) if isinstance(v, datetime) else v for v in row])
        for cell in ws[ws.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # openpyxl made "=…" a formula
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
