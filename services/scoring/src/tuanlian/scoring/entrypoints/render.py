"""A circular as CSV, XLSX or a printable HTML page with an inline SVG chart."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape
from tuanlian.shared.spreadsheet import CSV_MEDIA, XLSX_MEDIA, csv_bytes, xlsx_bytes

COLUMNS = [
    ("rank", "排名"), ("rank_change", "名次变化"), ("org", "团组织"), ("cadres", "团干部数"),
    ("cadres_meeting_quota_pct", "联系达标率%"), ("youths_linked", "联系青年数"),
    ("interactions_per_cadre", "人均联系次数"), ("five_ones_completion_pct", "五个一完成率%"),
    ("wishes_fulfilled", "微心愿完成"), ("wishes_raised", "微心愿提出"),
    ("voice_answered_in_time_pct", "青年之声及时回复率%"), ("average_rating", "平均评价"),
    ("satisfaction", "满意度测评"), ("activity_level", "活跃度"), ("points_per_cadre", "人均积分"),
    ("signals", "真实度提示"),
]


def _cell(v: Any) -> Any:
    if isinstance(v, dict):
        return "; ".join(f"{k}={x}" for k, x in v.items())
    return "" if v is None else v


def _table(doc: dict[str, Any]) -> list[list[Any]]:
    return [[_cell(r.get(k)) for k, _ in COLUMNS] for r in doc["rows"]]


_HTML = Environment(autoescape=select_autoescape(default=True)).from_string("""<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{{ d.title or d.org }} {{ d.number or '' }}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #999;padding:3px 6px}@media print{.noprint{display:none}}</style></head><body>
<h1>{{ d.title or d.org }}</h1>
<p>编号 {{ d.number or '—' }} · {{ d.period_start }} – {{ d.period_end }} · 计算时点 {{ d.as_of or '—' }}</p>
<svg role="img" aria-label="活跃度" width="{{ 160 + 40 * d.rows|length }}" height="160">
{% for r in d.rows %}{% set h = (r.activity_level or 0) * 1.2 %}
<rect x="{{ 40 + 40 * loop.index0 }}" y="{{ 130 - h }}" width="28" height="{{ h }}" fill="#c0392b"/>
<text x="{{ 40 + 40 * loop.index0 }}" y="145" font-size="9">{{ r.org[:4] }}</text>
<text x="{{ 40 + 40 * loop.index0 }}" y="{{ 126 - h }}" font-size="9">{{ r.activity_level or 0 }}</text>
{% endfor %}<text x="0" y="12" font-size="11">活跃度</text></svg>
<table><tr>{% for _, label in cols %}<th>{{ label }}</th>{% endfor %}</tr>
{% for row in table %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
<p>来源事件位置: {{ d.positions }}</p></body></html>""")


def render(doc: dict[str, Any], fmt: str) -> tuple[bytes, str]:
    header = [label for _, label in COLUMNS]
    if fmt == "csv":
        return csv_bytes(header, _table(doc)), CSV_MEDIA
    if fmt == "xlsx":
        return xlsx_bytes("通报", header, _table(doc)), XLSX_MEDIA
    html = _HTML.render(d=doc, cols=COLUMNS, table=_table(doc))
    return html.encode(), "text/html; charset=utf-8"
