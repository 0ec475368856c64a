"""Message templates (消息模板): Chinese first, English as the fallback."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    kind: str
    title_zh: str
    body_zh: str
    title_en: str
    body_en: str

    def render(self, lang: str = "zh", **values: object) -> tuple[str, str]:
        # A missing value renders empty rather than failing a whole batch of reminders.
        v = defaultdict(str, {k: str(x) for k, x in values.items()})
        if lang == "zh":
            return self.title_zh.format_map(v), self.body_zh.format_map(v)
        return self.title_en.format_map(v), self.body_en.format_map(v)

    def render_both(self, **values: object) -> Rendered:
        """Chinese and English at once: the recipient's language is picked where they are known."""
        return Rendered(*self.render("zh", **values), *self.render("en", **values))


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    title_en: str
    body_en: str


def _t(kind: str, title_zh: str, body_zh: str, title_en: str, body_en: str) -> Template:
    return Template(kind, title_zh, body_zh, title_en, body_en)


LINK_INVITATION = _t(
    "link_invitation",
    "团干部邀请你建立联系",
    "一位团干部希望与你建立直接联系（1+100）。接受后，你可以向 TA 提出微心愿、在青年之声留言。"
    "是否接受完全由你决定。",
    "A League cadre invites you to connect",
    "A League cadre would like to keep in direct contact with you (1+100). "
    "Accepting is entirely your choice.",
)

TEMPLATES: dict[str, Template] = {
    t.kind: t
    for t in (
        LINK_INVITATION,
        _t("contact_quota", "联系青年人数未达标", "你目前直接联系 {count} 名青年，按规定应不少于 {quota} 名。",
           "Contact quota not met", "You keep direct contact with {count} youths; the rule asks for {quota}."),
        _t("five_ones_due", "“五个一”活动尚未完成", "{period} 还剩 {days_left} 天，你已完成 {done}/{required} 项“五个一”活动。",
           "Five-ones activities not complete", "{days_left} days left in {period}: {done} of {required} done."),
        _t("online_silence", "日常有声音：已 {days} 天没有线上联系", "你已经 {days} 天没有与联系的青年线上互动了。",
           "No online contact for {days} days", "You have had no online interaction with your youths for {days} days."),
        _t("voice_unanswered", "青年之声留言待回复", "一条青年之声留言已超过回复时限，请尽快答复（有问必答）。",
           "Youth Voice post awaiting an answer", "A Youth Voice post is past its answer limit."),
        _t("voice_overdue", "青年之声留言严重超时", "一条青年之声留言已超过回复时限两倍仍未答复，请督办。",
           "Youth Voice post seriously overdue", "A Youth Voice post is unanswered past twice the limit."),
        _t("wish_untouched", "微心愿待处理", "一条微心愿已 {days} 天未处理，请接单或放入心愿池。",
           "Micro-wish waiting", "A micro-wish has been untouched for {days} days."),
        _t("wish_released", "你的微心愿已进入心愿池", "你的微心愿已放入心愿池，将由团组织和爱心伙伴认领。",
           "Your wish is in the wish pool", "Your micro-wish was released to the wish pool."),
        _t("wish_claimed", "你的微心愿已被认领", "好消息：你的微心愿已被认领。",
           "Your wish was claimed", "Good news: your micro-wish was claimed."),
        _t("wish_fulfilled", "你的微心愿已实现", "你的微心愿已实现，请确认。", "Your wish came true",
           "Your micro-wish was fulfilled: please confirm."),
        _t("wish_expired", "你的微心愿已过期", "很遗憾，你的微心愿已过期。", "Your wish expired",
           "Your micro-wish expired."),
        _t("report_due", "{report}将于 {due} 截止", "请于 {due} 前上报{report}（还剩 {days_left} 天）。",
           "{report_en} due {due}", "Please submit the {report_en} by {due} ({days_left} days left)."),
        _t("report_returned", "{report}被退回", "上级团组织退回了{report}，请修改后重新报送。原因：{reason}",
           "{report_en} returned", "The {report_en} was returned for rework: {reason}"),
        _t("account_rollout", "账号{step}截止 {due}", "{who}账号须于 {due} 前{step}，你的组织还有 {missing} 个未{step}。",
           "Account rollout due {due}", "{who_en} accounts are to be {step_en} by {due}; {missing} still are not."),
        _t("ballot_opened", "满意度测评已开始", "团支部书记满意度测评已开始，截止 {closes}。测评匿名进行。",
           "Satisfaction ballot open", "The anonymous ballot on your branch secretary is open until {closes}."),
        _t("login_code", "登录验证码", "你的验证码是 {code}，{minutes} 分钟内有效。请勿告诉他人。",
           "Login code", "Your login code is {code}, valid for {minutes} minutes. Do not share it."),
        _t("circular", "通报：{title}", "{number} 号通报已发布：{title}（{period_start} 至 {period_end}）。",
           "Circular: {title}", "Circular {number} was published: {title} ({period_start} to {period_end})."),
        _t("collective_five_ones_due", "领导机关集体“五个一”活动尚未完成",
           "{org}{period} 还剩 {days_left} 天，已开展集体活动 {done}/{required} 项。",
           "Leadership organ's collective five-ones not complete",
           "{days_left} days left in {period} for {org}: {done} of {required} collective activities done."),
        _t("digest", "今日消息汇总（{count} 条）", "{lines}", "Today's messages ({count})", "{lines}"),
    )
}


def template(kind: str) -> Template:
    return TEMPLATES[kind]
