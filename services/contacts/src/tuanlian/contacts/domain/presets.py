"""Rule-set presets (实施细则) transcribed from the seed notices; each number cites its source."""

from __future__ import annotations

from tuanlian.shared.contracts.contacts import (
    AccountsCounted,
    ActivityKind,
    AssessmentPeriod,
    AssessmentPlan,
    CircularPeriod,
    CircularPlan,
    ContactQuotas,
    FiveOnesPeriod,
    FiveOnesRule,
    GroupCoverage,
    OrganDuties,
    OrgRules,
    ReportDeadlines,
    Rhythm,
)

Q = FiveOnesPeriod.quarter

PRESETS: dict[str, tuple[str, OrgRules]] = {
    "000": (
        "2017 上海共青团 关于进一步做好“1+100”团干部直接联系青年工作的通知",
        OrgRules(
            # 000 is a "1+100" notice: 100 youths per full-time / leadership-organ cadre; part-time
            # cadres keep the League-wide ≥10.
            contact_quotas=ContactQuotas(full_time=100, seconded=100, part_time_leadership=100, part_time=10),
            five_ones={
                # 000 二.2: "专、挂职团干部每2个月开展不少于5次活动"
                "full_time": FiveOnesRule(count=5, period=FiveOnesPeriod.two_months),
                "seconded": FiveOnesRule(count=5, period=FiveOnesPeriod.two_months),
                # 000 二.2: "兼职团干部每季度开展不少于5次活动"
                "part_time": FiveOnesRule(count=5, period=Q),
                # 000 二.1: "团的领导机关每季度应集中开展不少于5次直接联系青年工作"
                "leadership_organ": FiveOnesRule(count=5, period=Q),
            },
            reports=ReportDeadlines(
                quarterly_five_ones_day=15,  # 000: "每季度最后一个月中旬 … 报团市委组织部"
                cadre_accounts_by="04-10",  # 000: "团干部于4月上旬全部登录使用"
                youth_accounts_by="04-30",  # 000: "青年于4月底前全部关注…登陆系统手机端"
            ),
            # 000 五.1: "对市属团组织“1+100”工作情况实行日常排名、季度通报制度"
            circulars=CircularPlan(periods=(CircularPeriod.quarter,)),
            # 000 五.2: "在年中和年底分别对各市属团组织进行全面评估"
            assessments=AssessmentPlan(periods=(AssessmentPeriod.half_year, AssessmentPeriod.year)),
        ),
    ),
    "001": (
        "2017 扬州大学 关于开展“1+100”团干部直接联系青年工作的通知",
        OrgRules(
            # 001 二: "经常性直接联系不少于100名团员青年" — every cadre, whatever the kind.
            contact_quotas=ContactQuotas(full_time=100, seconded=100, part_time_leadership=100, part_time=100),
            five_ones={
                # 001 三.2: "团干部每个月开展不少于5次活动"
                kind: FiveOnesRule(count=5, period=FiveOnesPeriod.month)
                for kind in ("full_time", "seconded", "part_time", "leadership_organ")
            },
            # 001 三.2: "为青年办一件实事、为青年上一堂团课、开展一次谈心谈话、组织或参与一次志愿服务、
            # 组织或参与一次文体活动等"
            five_ones_kinds=(ActivityKind.practical_service, ActivityKind.league_lecture, ActivityKind.heart_to_heart,
                             ActivityKind.volunteer_service, ActivityKind.culture_sports),
            reports=ReportDeadlines(
                quarterly_five_ones_day=None,  # 001 四.1: monthly circulars instead (月度通报)
                cadre_accounts_by="04-30",  # 001: "4月底前，每名…团干部都要登录使用"
                youth_accounts_by="04-30",  # 001: "4月底前…小伙伴全部关注…登陆系统手机端"
            ),
            # 001 五.1: "对各级团组织开展“1+100”工作情况进行月度通报"
            circulars=CircularPlan(periods=(CircularPeriod.month,)),
            # 001 五.2: "在年中和年底分别对各院级团组织工作进行全面评估"
            assessments=AssessmentPlan(periods=(AssessmentPeriod.half_year, AssessmentPeriod.year)),
        ),
    ),
    "002": (
        "2016 梅州共青团“1+100制度”实施细则",
        OrgRules(
            # 002 细则一: classes 1 and 2 (专职; 领导机关挂、兼职) ≥100, class 3 (其他兼职) ≥10
            contact_quotas=ContactQuotas(full_time=100, seconded=100, part_time_leadership=100, part_time=10),
            five_ones={
                # 002 细则四.3: no five-ones count; "线下每个季度有活动" — one activity a quarter
                kind: FiveOnesRule(count=1, period=Q)
                for kind in ("full_time", "seconded", "part_time", "leadership_organ")
            },
            # 002 细则四.3: "线上日常有声音 … 线下每个季度有活动、每年有面对面交流"
            rhythm=Rhythm(online_silence_days=7, activity_each_quarter=True, face_to_face_each_year=True),
            # 002 二.2 "8+4" (每年分4批、每批选派1/4的干部), 二.3 "4+1" (每人每周在基层青少年中工作不少于
            # 1天), 二.4 专题开放日 (每季度邀请…不少于50名普通团员青年走进机关)
            organ_duties=OrganDuties(grassroots_day_each_week=True, postings_each_year=True,
                                     open_day_youths_each_quarter=50),
            reports=ReportDeadlines(
                quarterly_five_ones_day=None,
                half_year=True,  # 002 五 (after 3.): "有关工作情况每半年向团市委报告一次"
                cadre_accounts_by="08-05",  # 002 细则五.2: "管理员于8月5日前将…团干部信息录入系统"
                youth_accounts_by="08-31",  # 002: "2016年8月底前…联系不少于100名"
                accounts_counted=AccountsCounted.issued,  # 002 asks them entered (录入), not logged in
            ),
            # 002 细则五.4: "定期评估和通报各县（市、区）团组织工作进展情况". No cadence is given: quarterly
            # is Tuanlian's choice, 000's.
            circulars=CircularPlan(periods=(CircularPeriod.quarter,)),
            # 002 五.3: "综合评估 … 团市委将定期公布考核情况". No cadence either: 000's again.
            assessments=AssessmentPlan(periods=(AssessmentPeriod.half_year, AssessmentPeriod.year)),
        ),
    ),
    "004": (
        "2018 吕梁学院 团干部直接联系青年制度",
        OrgRules(
            # 004 一: every school- and department-level cadre (专职、兼职、挂职) ≥100 youths
            contact_quotas=ContactQuotas(full_time=100, seconded=100, part_time_leadership=100, part_time=100),
            # 004 一: 校级 "3个以上的分团委、2个以上的团支部、10个以上的宿舍团小组"
            group_coverage_school=GroupCoverage(sub_committees=3, branches=2, dorm_groups=10),
            # 004 一: 系级 "2个以上的团支部、10个以上的宿舍团小组"
            group_coverage_department=GroupCoverage(sub_committees=0, branches=2, dorm_groups=10),
            reports=ReportDeadlines(
                quarterly_five_ones_day=None,
                # 004: "每学年国庆假期后5个工作日内报送联系青年情况"
                annual_after_national_day_working_days=5,
                cadre_accounts_by=None,
                youth_accounts_by=None,
            ),
        ),
    ),
}
