"""Message templates: Chinese first, English as the fallback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    kind: str
    title_zh: str
    body_zh: str
    title_en: str
    body_en: str

    def render(self, lang: str = "zh", **values: str) -> tuple[str, str]:
        if lang == "zh":
            return self.title_zh.format(**values), self.body_zh.format(**values)
        return self.title_en.format(**values), self.body_en.format(**values)


LINK_INVITATION = Template(
    kind="link_invitation",
    title_zh="团干部邀请你建立联系",
    body_zh="一位团干部希望与你建立直接联系（1+100）。接受后，你可以向 TA 提出微心愿、在青年之声留言。"
    "是否接受完全由你决定。",
    title_en="A League cadre invites you to connect",
    body_en="A League cadre would like to keep in direct contact with you (1+100). "
    "Accepting is entirely your choice.",
)
