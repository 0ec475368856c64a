"""Exported tables: text typed by youths and admins never becomes a spreadsheet formula."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook
from tuanlian.shared.spreadsheet import csv_bytes, xlsx_bytes

HOSTILE = ['=HYPERLINK("http://evil.example","点此领奖")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "=cmd|'/c calc'!A0"]
HEADER = ("title", "n", "at")
AT = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)  # 01:30 the next day in Beijing


def test_xlsx_keeps_text_as_text() -> None:
    rows = [[t, 3, AT] for t in HOSTILE] + [["学习环境", -2, None]]
    ws = load_workbook(io.BytesIO(xlsx_bytes("问题清单", HEADER, rows))).active
    assert ws is not None and ws.title == "问题清单"
    got = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
    assert [r[0] for r in got] == [*HOSTILE, "学习环境"]  # as typed, not evaluated or prefixed
    assert all(c.data_type == "s" for c in ws["A"][1:])  # no formula cell
    assert [r[1] for r in got] == [3] * len(HOSTILE) + [-2]  # numbers stay numbers
    assert got[0][2] == datetime(2026, 12, 7, 1, 30)  # China time: Excel holds no zone


def test_csv_neutralises_formulas() -> None:
    rows = [[t, -1, AT] for t in HOSTILE] + [["学习环境", 0, None]]
    data = csv_bytes(HEADER, rows)
    assert data.startswith("\ufeff".encode())  # Excel reads UTF-8 Chinese only with the BOM
    got = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert got[0] == list(HEADER)
    assert [r[0] for r in got[1:]] == ["'" + t for t in HOSTILE] + ["学习环境"]
    assert [r[1] for r in got[1:]] == ["-1"] * len(HOSTILE) + ["0"]  # a number is no formula
    assert got[1][2] == "2026-12-07T01:30:00+08:00" and got[-1][2] == ""
