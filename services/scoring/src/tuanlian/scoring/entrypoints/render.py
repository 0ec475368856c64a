"""A circular (通报) as CSV, XLSX or a printable HTML page with an inline SVG chart, worded as a
League document: Chinese labels for every cell, times in Beijing time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, select_autoescape
from tuanlian.scoring.domain.periods import CHINA
from tuanlian.shared.spreadsheet import CSV_MEDIA, XLSX_MEDIA, csv_bytes, xlsx_bytes

COLUMNS = [
    ("rank", "排名"), ("rank_change", "名次变化"), ("org", "团组织"), ("cadres", "团干部数"),
    ("cadres_meeting_quota_pct", "联系达标率%"), ("youths_linked", "联系青年数"),
    ("interactions_per_cadre", "人均联系次数"), ("five_ones_completion_pct", "五个一完成率%"),
    ("collective_five_ones_pct", "领导机关五个一完成率%"), ("campaigns", "集中活动参与"),
    ("wishes_fulfilled", "微心愿完成"), ("wishes_raised", "微心愿提出"),
    ("voice_answered_in_time_pct", "青年之声及时回复率%"), ("average_rating", "平均评价"),
    ("satisfaction", "满意度测评"), ("activity_level", "活跃度"), ("points_per_cadre", "人均积分"),
    ("signals", "真实度提示"),
]

# The anti-fraud signals (domain/signals.py), as a circular names them; a row counts the cadres
# showing each.
SIGNALS = {
    "burst": "集中补录", "identical_summaries": "内容雷同", "implausible_hours": "非正常时段",
    "never_confirmed": "长期未确认", "disputed": "青年异议", "failed_spot_checks": "抽查不实",
}


def _satisfaction(s: dict[str, Any]) -> str:
    if not s.get("ballots"):
        return "未测评"
    text = (f"测评{s['ballots']}次：满意{s.get('satisfied', 0)} 基本满意{s.get('basically_satisfied', 0)} "
            f"不满意{s.get('unsatisfied', 0)}")
    return text + (f"；建议调整{s['reelection_flags']}人" if s.get("reelection_flags") else "")


def _signals(s: dict[str, Any]) -> str:
    return "；".join(f"{SIGNALS.get(code, code)} {n}人" for code, n in s.items() if n) or "无"


def _campaigns(c: dict[str, Any]) -> str:
    """集中活动参与: of the campaigns run from above in the period, how many it took part in."""
    return f"{c.get('joined', 0)}/{c['run']}" if c.get("run") else "无"


def _cell(key: str, v: Any) -> Any:
    if key == "satisfaction" and isinstance(v, dict):
        return _satisfaction(v)
    if key == "campaigns" and isinstance(v, dict):
        return _campaigns(v)
    if key == "signals" and isinstance(v, dict):
        return _signals(v)
    return "" if v is None else v


def _table(doc: dict[str, Any]) -> list[list[Any]]:
    return [[_cell(k, r.get(k)) for k, _ in COLUMNS] for r in doc["rows"]]


def _moved(change: Any) -> str:
    """名次变化 on paper: ↑2, ↓1, 持平, or — when there is no earlier ranking to compare."""
    if change is None or change == "":
        return "—"
    return "持平" if change == 0 else f"↑{change}" if change > 0 else f"↓{-change}"


def _beijing(at: Any, fmt: str = "%Y年%m月%d日 %H:%M") -> str:
    if not at:
        return "—"
    when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
    return when.astimezone(CHINA).strftime(fmt)


def _positions(positions: dict[str, int] | None) -> str:
    # Keyed by the durable that applied each stream (scoring_points_<producer>).
    return "，".join(f"{name.rsplit('_', 1)[-1]} 第{seq}条" for name, seq in sorted((positions or {}).items())) or "—"


_HTML = Environment(autoescape=select_autoescape(default=True)).from_string("""<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{{ d.title or d.org }} {{ d.number or '' }}</title>
<style>body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",sans-serif;margin:2em}
h1{font-size:22px;text-align:center}table{border-collapse:collapse;font-size:12px;margin:1em 0}
td,th{border:1px solid #999;padding:3px 6px}td.n{text-align:right}.meta,.note{font-size:12px;color:#333}
.sign{text-align:right;margin-top:2em}@media print{body{margin:0}}</style></head><body>
<h1>{{ d.title or d.org }}</h1>
<p class="meta">编号 {{ d.number or '—' }} · 统计期间 {{ d.period_start }} 至 {{ d.period_end }} · 数据截至 {{ as_of }}（北京时间）</p>
<svg role="img" aria-label="各团组织活跃度" width="640" height="{{ 36 + 24 * d.rows|length }}">
<text x="0" y="14" font-size="13">活跃度（0–100）</text>
{% for r in d.rows %}{% set y = 26 + 24 * loop.index0 %}{% set w = ((r.activity_level or 0) * 4)|round(1) %}
<text x="150" y="{{ y + 14 }}" font-size="12" text-anchor="end">{{ r.org }}</text>
<rect x="160" y="{{ y }}" width="{{ w }}" height="18" fill="#c0392b"/>
<text x="{{ 166 + w }}" y="{{ y + 14 }}" font-size="12">{{ r.activity_level if r.activity_level is not none else '—' }}</text>
{% endfor %}</svg>
<table><tr>{% for _, label in cols %}<th>{{ label }}</th>{% endfor %}</tr>
{% for row in table %}<tr>{% for v in row %}<td{% if v is number %} class="n"{% endif %}>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
<p class="note">积分按各组织实施细则及团联默认积分规则计算。真实度提示为需要核实的信号（列出有该提示的团干部人数），不作自动扣分。
来源事件位置：{{ positions }}。</p>
<p class="sign">{{ d.org }}<br>{{ published }}</p></body></html>""")


def render(doc: dict[str, Any], fmt: str) -> tuple[bytes, str]:
    header = [label for _, label in COLUMNS]
    if fmt == "csv":
        return csv_bytes(header, _table(doc)), CSV_MEDIA
    if fmt == "xlsx":
        return xlsx_bytes("通报", header, _table(doc)), XLSX_MEDIA
    table = _table(doc)
    for row in table:  # on paper the change reads as an arrow; the spreadsheets keep the number
        row[1] = _moved(row[1])
    html = _HTML.render(d=doc, cols=COLUMNS, table=table, as_of=_beijing(doc.get("as_of")),
                        published=_beijing(doc.get("published_at") or doc.get("as_of"), "%Y年%m月%d日"),
                        positions=_positions(doc.get("positions")))
    return html.encode(), "text/html; charset=utf-8"
