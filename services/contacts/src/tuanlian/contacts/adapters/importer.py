"""Spreadsheets in (CSV or XLSX), rows out, each with the row number a person sees in Excel."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from openpyxl import load_workbook
from pydantic import BaseModel, ValidationError
from tuanlian.shared.db import Database
from tuanlian.shared.errors import RuleViolation

MAX_ROWS = 20_000


@dataclass
class RowError:
    row: int
    column: str
    reason: str


@dataclass
class ImportReport:
    """批量导入报告: what each row did, and why a refused row was refused."""

    rows: int = 0
    created: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False

    def error(self, row: int, column: str, reason: str) -> None:
        self.errors.append(RowError(row, column, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "applied": self.applied,
            "created": self.created,
            "unchanged": self.unchanged,
            "errors": [e.__dict__ for e in sorted(self.errors, key=lambda e: (e.row, e.column))],
        }


def read_rows(filename: str, data: bytes) -> list[tuple[int, dict[str, str]]]:
    """(row number, {column: text}) for each non-empty data row; the header is row 1."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        table = _xlsx(data)
    elif name.endswith(".csv"):
        table = _csv(data)
    else:
        raise RuleViolation("upload a .csv or .xlsx file", field="file")
    if not table:
        raise RuleViolation("the file is empty", field="file")
    header = [h.strip().lower() for h in table[0]]
    if not any(header):
        raise RuleViolation("the first row must name the columns", field="file")
    rows = []
    for number, values in enumerate(table[1:], start=2):
        cells = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header) if h}
        if any(cells.values()):
            rows.append((number, cells))
    if len(rows) > MAX_ROWS:
        raise RuleViolation(f"at most {MAX_ROWS} rows per file", field="file")
    return rows


def _csv(data: bytes) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")  # what Excel in a Chinese locale saves as "CSV"
        except UnicodeDecodeError as exc:
            raise RuleViolation("the CSV file is neither UTF-8 nor GB18030 text", field="file") from exc
    return [row for row in csv.reader(io.StringIO(text))]


def _xlsx(data: bytes) -> list[list[str]]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise RuleViolation("the file is not a readable .xlsx workbook", field="file") from exc
    sheet = book.worksheets[0]
    out = [["" if v is None else _cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    book.close()
    return out


def _cell(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # phone numbers typed into Excel come back as floats
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def parse_row(model: type[BaseModel], row: int, cells: dict[str, Any], report: ImportReport) -> Any:
    """The row as ``model``, or ``None`` with one report line per bad column."""
    try:
        return model.model_validate(cells)
    except ValidationError as exc:
        for err in exc.errors():
            column = ".".join(str(p) for p in err["loc"]) or "row"
            report.error(row, column, err["msg"])
        return None


def truthy(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "y", "是", "t"}


class ImportRefused(RuleViolation):
    """Roll the whole import back; the row-by-row report travels with the 422."""

    def __init__(self, report: ImportReport) -> None:
        report.applied = False
        report.created = []
        super().__init__(
            f"{len(report.errors)} rows have errors; nothing was imported (fix them, or import with "
            "all_or_nothing=false to keep the good rows)",
            report=report.as_dict(),
        )


RowHandler = Callable[[asyncpg.Connection, int, Any, ImportReport], Awaitable[None]]


async def run_import(
    db: Database, filename: str, data: bytes, model: type[BaseModel], key: str, all_or_nothing: bool,
    apply: RowHandler,
) -> ImportReport:
    """One import, the same for every kind of row: read the file, validate each row as ``model``,
    refuse a second row with the same ``key`` in the file, hand the rest to ``apply`` (which
    records created / unchanged / errors in the report) in one transaction, and roll it all back
    when any row failed and ``all_or_nothing``."""
    table = read_rows(filename, data)
    report = ImportReport(rows=len(table))
    async with db.transaction() as conn:
        seen: dict[Any, int] = {}
        for number, cells in table:
            row = parse_row(model, number, cells, report)
            if row is None:
                continue
            value = getattr(row, key)
            if value in seen:
                report.error(number, key, f"the same {key} already appears in row {seen[value]}")  # no value: it may be a phone
                continue
            seen[value] = number
            await apply(conn, number, row, report)
        if report.errors and all_or_nothing:
            raise ImportRefused(report)
        report.applied = True
    return report
