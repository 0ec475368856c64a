"""A circular on paper and in spreadsheets reads as a League document: Chinese labels in every
cell, Beijing time, no Python structures."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook
from tuanlian.scoring.entrypoints.render import render

ROW = {"rank": 1, "rank_change": 2, "org": "东湖区团委", "cadres": 5, "cadres_meeting_quota_pct": 20.0,
       "youths_linked": 359, "interactions_per_cadre": 13.8, "five_ones_completion_pct": 91.7,
       "leadership_organs": 3, "collective_five_ones_pct": 60.0, "campaigns": {"run": 3, "joined": 2},
       "wishes_fulfilled": 14, "wishes_raised": 32, "voice_answered_in_time_pct": 68.8, "average_rating": 3.72,
       "satisfaction": {"ballots": 2, "satisfied": 30, "basically_satisfied": 5, "unsatisfied": 1,
                        "reelection_flags": 1},
       "activity_level": 35.5, "points_per_cadre": 64.8,
       "signals": {"burst": 4, "never_confirmed": 1, "failed_spot_checks": 0}}
DOC = {"title": "江城市团委 2026年12月 月度通报", "number": "2026-12-001", "org": "江城市团委",
       "period_start": "2026-12-01", "period_end": "2026-12-31",
       "as_of": "2026-12-07T16:30:00+00:00", "published_at": "2026-12-07T16:30:01+00:00",
       "positions": {"scoring_points_contacts": 10059, "scoring_points_wishes": 875},
       "rows": [ROW, {**ROW, "org": "西山县团委", "rank": 2, "rank_change": -1, "activity_level": None,
                      "satisfaction": {"ballots": 0}, "signals": {},
                      "campaigns": {"run": 0, "joined": 0}},
                {**ROW, "org": "江城大学团委", "rank": 3, "rank_change": None, "satisfaction": {}, "signals": {}}]}


def test_the_printable_page() -> None:
    html = render(DOC, "html")[0].decode()
    assert "数据截至 2026年12月08日 00:30（北京时间）" in html  # 16:30 UTC is past midnight in Beijing
    assert "<br>2026年12月08日</p>" in html  # signed by the org, dated its day of publication
    assert "测评2次：满意30 基本满意5 不满意1；建议调整1人" in html and "未测评" in html
    assert "集中补录 4人；长期未确认 1人" in html and "抽查不实" not in html  # none showed it
    assert ">↑2<" in html and ">↓1<" in html and ">—<" in html
    assert "contacts 第10059条，wishes 第875条" in html
    assert "{'" not in html and "ballots" not in html and "burst" not in html  # no dict or key=value left
    assert ">江城大学团委</text>" in html  # the chart names each org in full


def test_the_spreadsheets_keep_numbers_and_word_the_rest() -> None:
    rows = list(csv.reader(io.StringIO(render(DOC, "csv")[0].decode("utf-8-sig"))))
    assert rows[0][:3] == ["排名", "名次变化", "团组织"]
    assert rows[1][1] == "2" and rows[2][1] == "-1" and rows[3][1] == ""
    col = {name: i for i, name in enumerate(rows[0])}
    assert rows[1][col["满意度测评"]] == "测评2次：满意30 基本满意5 不满意1；建议调整1人"
    assert rows[1][col["真实度提示"]] == "集中补录 4人；长期未确认 1人" and rows[2][col["真实度提示"]] == "无"
    assert rows[1][col["领导机关五个一完成率%"]] == "60.0" and rows[1][col["集中活动参与"]] == "2/3"
    assert rows[2][col["集中活动参与"]] == "无" and rows[3][col["集中活动参与"]] == "2/3"
    sheet = load_workbook(io.BytesIO(render(DOC, "xlsx")[0])).active
    assert sheet.cell(2, 2).value == 2 and sheet.cell(3, 2).value == -1  # numbers, sortable
    assert sheet.cell(3, col["满意度测评"] + 1).value == "未测评"
    assert sheet.cell(2, col["领导机关五个一完成率%"] + 1).value == 60.0
