"""Event contracts published by the wishes service on the ``WISHES`` stream.

Micro-wishes (微心愿) and the wish pool (心愿池), Youth Voice (青年之声), ratings, and anonymous
satisfaction ballots (满意度测评). Like every contract they carry ids, never names or phone numbers;
ballot events carry tallies only, never who voted what.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field
from tuanlian.shared.contracts.dates import CivilDateTime
from tuanlian.shared.events import ContractRegistry, DomainEvent

WISHES = ContractRegistry("wishes")


class WishCategory(StrEnum):
    study = "study"
    work = "work"  # 就业创业
    daily_life = "daily_life"
    health = "health"  # 身心健康
    family_hardship = "family_hardship"
    culture_sports = "culture_sports"
    other = "other"


class ClaimantKind(StrEnum):
    partner = "partner"  # 企业、志愿团队、部门
    org = "org"
    cadre = "cadre"


# --- Micro-wishes: the youth and their cadre -----------------------------------------------------


@WISHES.register
class WishRaised(DomainEvent):
    """A youth raised a micro-wish (微心愿) to a cadre they are linked to."""

    event_type = "WishRaised"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str
    category: WishCategory
    estimated_value_yuan: int | None = None


@WISHES.register
class WishAccepted(DomainEvent):
    event_type = "WishAccepted"
    stream_type = "wish"
    wish_id: str
    cadre_id: str
    org_path: str


@WISHES.register
class WishDeclined(DomainEvent):
    event_type = "WishDeclined"
    stream_type = "wish"
    wish_id: str
    cadre_id: str
    org_path: str
    reason: str


@WISHES.register
class WishStarted(DomainEvent):
    """Accepted → in progress."""

    event_type = "WishStarted"
    stream_type = "wish"
    wish_id: str
    cadre_id: str
    org_path: str


@WISHES.register
class WishFulfilled(DomainEvent):
    """Fulfilled with evidence, by the cadre or, for a pool wish, by the claimant."""

    event_type = "WishFulfilled"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str
    from_pool: bool
    claim_id: str | None = None
    claimant_kind: ClaimantKind | None = None
    claimant_id: str | None = None
    fulfilled_at: CivilDateTime


@WISHES.register
class WishConfirmed(DomainEvent):
    """The youth confirmed the wish came true; the wish is closed."""

    event_type = "WishConfirmed"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str
    from_pool: bool
    claimant_kind: ClaimantKind | None = None
    claimant_id: str | None = None
    days_to_fulfil: float


@WISHES.register
class WishDisputed(DomainEvent):
    event_type = "WishDisputed"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str
    reason: str | None = None


@WISHES.register
class WishReleasedToPool(DomainEvent):
    """Untouched past the org's limit (``automatic``) or released by the cadre: awaits review."""

    event_type = "WishReleasedToPool"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str
    automatic: bool
    reason: str | None = None  # "untouched", "cadre_deactivated"; None on events before it was added


@WISHES.register
class PoolWishReviewed(DomainEvent):
    """An org admin approved (listed, personal details edited out) or rejected a pool wish."""

    event_type = "PoolWishReviewed"
    stream_type = "wish"
    wish_id: str
    org_path: str
    approved: bool
    reason: str | None = None
    reviewer_id: str
    kept_photo_ids: list[str] = []  # photos the reviewer kept for the listing (they may show faces)


@WISHES.register
class PoolWishClaimed(DomainEvent):
    event_type = "PoolWishClaimed"
    stream_type = "wish"
    wish_id: str
    claim_id: str
    org_path: str
    claimant_kind: ClaimantKind
    claimant_id: str
    deadline: CivilDateTime


@WISHES.register
class PoolClaimLapsed(DomainEvent):
    """A claim not fulfilled by its deadline (or given up): the wish is back in the pool."""

    event_type = "PoolClaimLapsed"
    stream_type = "wish"
    wish_id: str
    claim_id: str
    org_path: str
    claimant_kind: ClaimantKind
    claimant_id: str
    reason: str | None = None  # "deadline", "given_up", "cadre_deactivated"


@WISHES.register
class PoolContributionPledged(DomainEvent):
    """拼好愿: one of several contributors pledged toward a pool wish."""

    event_type = "PoolContributionPledged"
    stream_type = "wish"
    wish_id: str
    org_path: str
    contributor_kind: ClaimantKind
    contributor_id: str
    amount_yuan: int = Field(ge=0)


@WISHES.register
class WishExpired(DomainEvent):
    event_type = "WishExpired"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str


@WISHES.register
class WishWithdrawn(DomainEvent):
    event_type = "WishWithdrawn"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str


@WISHES.register
class WishClosedUnconfirmed(DomainEvent):
    """A fulfilled wish the youth neither confirmed nor disputed within ``waited_days``: closed
    without the youth's word. Not a confirmation: the youth never agreed it came true, so scoring
    must not credit it as a confirmed wish (000: no youth is counted without their consent)."""

    event_type = "WishClosedUnconfirmed"
    stream_type = "wish"
    wish_id: str
    youth_id: str
    cadre_id: str
    org_path: str
    from_pool: bool
    claimant_kind: ClaimantKind | None = None
    claimant_id: str | None = None
    fulfilled_at: CivilDateTime
    waited_days: int


@WISHES.register
class WishRelocated(DomainEvent):
    """The wish's cadre was transferred to another org: the open wish stays with them and now
    belongs under their new org path."""

    event_type = "WishRelocated"
    stream_type = "wish"
    wish_id: str
    cadre_id: str
    old_path: str
    org_path: str


@WISHES.register
class WishPhotoAttached(DomainEvent):
    """The youth attached a photo to the wish. The image stays in the wishes service; the bus
    carries its id, type, size and hash only."""

    event_type = "WishPhotoAttached"
    stream_type = "wish"
    wish_id: str
    photo_id: str
    org_path: str
    content_type: str
    size_bytes: int = Field(ge=1)
    sha256: str


# --- Youth Voice (青年之声) ------------------------------------------------------------------------


class VoiceKind(StrEnum):
    question = "question"
    opinion = "opinion"
    suggestion = "suggestion"
    complaint = "complaint"


@WISHES.register
class VoicePosted(DomainEvent):
    """A youth posted to a cadre or to an org; ``due_at`` is the org's answer limit."""

    event_type = "VoicePosted"
    stream_type = "voice_post"
    post_id: str
    youth_id: str
    cadre_id: str | None
    org_id: str
    org_path: str
    kind: VoiceKind
    due_at: CivilDateTime


@WISHES.register
class VoiceAnswered(DomainEvent):
    """有问必答: answered by the cadre or an admin; ``in_time`` against the org's limit."""

    event_type = "VoiceAnswered"
    stream_type = "voice_post"
    post_id: str
    youth_id: str
    cadre_id: str | None
    answered_by: str
    org_path: str
    in_time: bool
    response_seconds: int


@WISHES.register
class VoiceEscalated(DomainEvent):
    """Unanswered past the limit: escalated to the org admin."""

    event_type = "VoiceEscalated"
    stream_type = "voice_post"
    post_id: str
    cadre_id: str | None
    org_id: str
    org_path: str
    overdue_hours: float


@WISHES.register
class VoiceIssueGrouped(DomainEvent):
    """问题清单: posts grouped into an issue by an admin."""

    event_type = "VoiceIssueGrouped"
    stream_type = "voice_issue"
    issue_id: str
    org_path: str
    post_ids: list[str]
    status: str


@WISHES.register
class VoicePostRedirected(DomainEvent):
    """The addressed cadre was transferred (the post follows them, ``cadre_id`` kept) or left the
    programme (``cadre_id`` None: the post goes to their org, whose admins answer it)."""

    event_type = "VoicePostRedirected"
    stream_type = "voice_post"
    post_id: str
    from_cadre_id: str
    cadre_id: str | None
    org_id: str
    org_path: str
    reason: str


@WISHES.register
class VoiceIssueRenamed(DomainEvent):
    """问题清单: an admin renamed the issue (the title stays in the wishes service)."""

    event_type = "VoiceIssueRenamed"
    stream_type = "voice_issue"
    issue_id: str
    org_path: str


# --- Ratings and satisfaction ballots --------------------------------------------------------------


@WISHES.register
class CadreRated(DomainEvent):
    """A linked youth rated their cadre. The rater is not on the bus: cadres see aggregates only."""

    event_type = "CadreRated"
    stream_type = "rating"
    rating_id: str
    cadre_id: str
    org_path: str
    score: int = Field(ge=1, le=5)
    period: str  # e.g. "2026Q3"


@WISHES.register
class BallotOpened(DomainEvent):
    """满意度测评 on a branch secretary, for the members of that branch."""

    event_type = "BallotOpened"
    stream_type = "ballot"
    ballot_id: str
    branch_org_id: str
    org_path: str
    secretary_cadre_id: str
    year: int
    eligible: int
    closes_at: CivilDateTime


@WISHES.register
class BallotClosed(DomainEvent):
    """Tallies only, published when turnout reached the minimum; ``reelection_flag`` when most
    voters were unsatisfied (003: such secretaries are replaced)."""

    event_type = "BallotClosed"
    stream_type = "ballot"
    ballot_id: str
    branch_org_id: str
    org_path: str
    secretary_cadre_id: str
    year: int
    eligible: int
    turnout: int
    published: bool
    satisfied: int | None = None
    basically_satisfied: int | None = None
    unsatisfied: int | None = None
    reelection_flag: bool = False


# --- Partners (企业、志愿团队、部门) -----------------------------------------------------------------


class PartnerKind(StrEnum):
    company = "company"
    volunteer_team = "volunteer_team"
    department = "department"


@WISHES.register
class PartnerRegistered(DomainEvent):
    """An org admin registered a partner for their subtree: it may see and claim pool wishes there."""

    event_type = "PartnerRegistered"
    stream_type = "partner"
    partner_id: str
    kind: PartnerKind
    org_path: str
    registered_by: str
