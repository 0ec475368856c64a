"""微心愿 (micro-wish) and 心愿池 (wish pool): the lifecycle of one wish, as a transition table.

Pure: every command checks the table and the org's limits, then records one event. Who may call
which command is the application layer's business; what state allows it is decided here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tuanlian.shared.contracts.contacts import ServiceLimits
from tuanlian.shared.contracts.wishes import (
    ClaimantKind,
    PoolClaimLapsed,
    PoolContributionPledged,
    PoolWishClaimed,
    PoolWishReviewed,
    WishAccepted,
    WishCategory,
    WishClosedUnconfirmed,
    WishConfirmed,
    WishDeclined,
    WishDisputed,
    WishExpired,
    WishFulfilled,
    WishPhotoAttached,
    WishRaised,
    WishReleasedToPool,
    WishRelocated,
    WishStarted,
    WishWithdrawn,
)
from tuanlian.shared.errors import DomainError, IllegalTransition, RuleViolation
from tuanlian.wishes.domain.timed import TimedAggregate


class WishState(StrEnum):
    raised = "raised"  # waiting for the cadre
    accepted = "accepted"
    in_progress = "in_progress"
    fulfilled = "fulfilled"  # waiting for the youth's word
    disputed = "disputed"
    confirmed = "confirmed"  # closed
    closed_unconfirmed = "closed_unconfirmed"  # closed without the youth's word: not a confirmation
    declined = "declined"
    awaiting_review = "awaiting_review"  # released to the pool, not yet listed
    pooled = "pooled"  # listed in 心愿池
    claimed = "claimed"
    rejected = "rejected"  # the admin would not list it
    withdrawn = "withdrawn"
    expired = "expired"


S = WishState
# The most any wish may be worth or be pledged, whatever an org's cap: a micro-wish (微心愿) is
# small (the default cap is ¥500), and the read tables keep yuan in 32-bit integer columns.
MAX_VALUE_YUAN = 1_000_000
TERMINAL = frozenset({S.confirmed, S.closed_unconfirmed, S.declined, S.rejected, S.withdrawn, S.expired})

# command → {state it may be called in: state it leads to}
TRANSITIONS: dict[str, dict[WishState, WishState]] = {
    "accept": {S.raised: S.accepted},
    "decline": {S.raised: S.declined},
    "start": {S.accepted: S.in_progress},
    "fulfil": {S.in_progress: S.fulfilled, S.claimed: S.fulfilled, S.disputed: S.fulfilled},
    "confirm": {S.fulfilled: S.confirmed},
    "dispute": {S.fulfilled: S.disputed},
    "release": {S.raised: S.awaiting_review, S.accepted: S.awaiting_review, S.in_progress: S.awaiting_review},
    "auto_release": {S.raised: S.awaiting_review, S.accepted: S.awaiting_review},
    # the cadre left the programme: whatever waited on them goes to the pool at once
    "cadre_left": {s: S.awaiting_review for s in (S.raised, S.accepted, S.in_progress, S.disputed)},
    # the cadre was transferred: what is still theirs follows them to their new org
    "relocate": {s: s for s in (S.raised, S.accepted, S.in_progress, S.fulfilled, S.disputed)},
    "close_unconfirmed": {S.fulfilled: S.closed_unconfirmed},
    "attach_photo": {s: s for s in (S.raised, S.accepted, S.in_progress, S.awaiting_review)},
    "approve": {S.awaiting_review: S.pooled},
    "reject": {S.awaiting_review: S.rejected},
    "claim": {S.pooled: S.claimed},
    "lapse": {S.claimed: S.pooled},
    "pledge": {S.pooled: S.pooled, S.claimed: S.claimed},
    "expire": {s: S.expired for s in (S.raised, S.accepted, S.awaiting_review, S.pooled)},
    "withdraw": {
        s: S.withdrawn
        for s in (S.raised, S.accepted, S.in_progress, S.awaiting_review, S.pooled, S.claimed, S.disputed)
    },
}


class Wish(TimedAggregate):
    """微心愿."""

    stream_type = "wish"
    label = "wish"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.state = S.raised
        self.youth_id = ""
        self.cadre_id = ""
        self.org_path = ""
        self.category = WishCategory.other
        self.value: int | None = None
        self.raised_at = self.at
        self.touched_at = self.at
        self.claim_id: str | None = None
        self.claimant: tuple[ClaimantKind, str] | None = None
        self.claim_deadline: datetime | None = None
        self.fulfilled_by: tuple[ClaimantKind, str] | None = None
        self.fulfilled_at: datetime | None = None
        self.pooled = False
        self.pledged_yuan = 0
        self.photo_ids: list[str] = []

    def _check(self, command: str) -> WishState:
        target = TRANSITIONS[command].get(self.state)
        if target is None:
            raise IllegalTransition(
                f"cannot {command.replace('_', ' ')} a wish that is {self.state.value}",
                current=self.state.value,
                allowed_from=sorted(s.value for s in TRANSITIONS[command]),
            )
        return target

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def raise_(
        cls,
        wish_id: str,
        youth_id: str,
        cadre_id: str,
        org_path: str,
        category: WishCategory,
        value: int | None,
        limits: ServiceLimits,
        linked: bool,
        now: datetime,
    ) -> Wish:
        if not linked:
            raise RuleViolation("you can raise wishes only to a cadre you are linked to", field="cadre_id")
        if value is not None and value > limits.wish_max_value_yuan:
            raise RuleViolation(
                f"estimated value is capped at ¥{limits.wish_max_value_yuan} by your organisation",
                field="estimated_value_yuan",
            )
        wish = cls(wish_id)
        wish._emit(
            now,
            WishRaised(
                wish_id=wish_id,
                youth_id=youth_id,
                cadre_id=cadre_id,
                org_path=org_path,
                category=category,
                estimated_value_yuan=value,
            ),
        )
        return wish

    def accept(self, now: datetime) -> None:
        self._check("accept")
        self._emit(now, WishAccepted(wish_id=self.id, cadre_id=self.cadre_id, org_path=self.org_path))

    def decline(self, reason: str, now: datetime) -> None:
        self._check("decline")
        if not reason.strip():
            raise RuleViolation("say why you decline", field="reason")
        self._emit(
            now, WishDeclined(wish_id=self.id, cadre_id=self.cadre_id, org_path=self.org_path, reason=reason)
        )

    def start(self, now: datetime) -> None:
        self._check("start")
        self._emit(now, WishStarted(wish_id=self.id, cadre_id=self.cadre_id, org_path=self.org_path))

    def fulfil(self, now: datetime) -> None:
        self._check("fulfil")
        claimant = self.claimant if self.state is not S.in_progress else None
        self._emit(
            now,
            WishFulfilled(
                wish_id=self.id,
                youth_id=self.youth_id,
                cadre_id=self.cadre_id,
                org_path=self.org_path,
                from_pool=claimant is not None,
                claim_id=self.claim_id if claimant else None,
                claimant_kind=claimant[0] if claimant else None,
                claimant_id=claimant[1] if claimant else None,
                fulfilled_at=now,
            ),
        )

    def confirm(self, now: datetime) -> None:
        self._check("confirm")
        by = self.fulfilled_by
        days = ((self.fulfilled_at or now) - self.raised_at).total_seconds() / 86400
        self._emit(
            now,
            WishConfirmed(
                wish_id=self.id,
                youth_id=self.youth_id,
                cadre_id=self.cadre_id,
                org_path=self.org_path,
                from_pool=by is not None,
                claimant_kind=by[0] if by else None,
                claimant_id=by[1] if by else None,
                days_to_fulfil=round(days, 3),
            ),
        )

    def dispute(self, reason: str | None, now: datetime) -> None:
        self._check("dispute")
        self._emit(
            now,
            WishDisputed(
                wish_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id, org_path=self.org_path,
                reason=reason,
            ),
        )

    def release(self, now: datetime, limits: ServiceLimits | None = None) -> None:
        """By the cadre (any time before fulfilment), or automatically (``limits`` given) once the
        wish has been untouched for the org's number of days."""
        automatic = limits is not None
        self._check("auto_release" if automatic else "release")
        if limits is not None and now - self.touched_at < timedelta(days=limits.wish_untouched_days):
            raise IllegalTransition(
                f"the wish was touched less than {limits.wish_untouched_days} days ago",
                current=self.state.value,
            )
        self._emit(
            now,
            WishReleasedToPool(
                wish_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id, org_path=self.org_path,
                automatic=automatic, reason="untouched" if automatic else None,
            ),
        )

    def cadre_left(self, now: datetime) -> None:
        """The cadre was deactivated: the wish goes to the pool at once, saying why."""
        self._check("cadre_left")
        self._emit(
            now,
            WishReleasedToPool(
                wish_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id, org_path=self.org_path,
                automatic=True, reason="cadre_deactivated",
            ),
        )

    def relocate(self, new_path: str, now: datetime) -> None:
        """The cadre was transferred: the wish stays theirs, under their new org."""
        self._check("relocate")
        if new_path == self.org_path:
            return
        self._emit(now, WishRelocated(wish_id=self.id, cadre_id=self.cadre_id, old_path=self.org_path,
                                      org_path=new_path))

    def close_unconfirmed(self, now: datetime, after_days: int) -> None:
        """Fulfilled, and the youth said nothing for ``after_days``: closed, but not confirmed."""
        self._check("close_unconfirmed")
        assert self.fulfilled_at is not None
        if now - self.fulfilled_at < timedelta(days=after_days):
            raise IllegalTransition(f"the youth has {after_days} days to confirm", current=self.state.value)
        by = self.fulfilled_by
        self._emit(
            now,
            WishClosedUnconfirmed(
                wish_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id, org_path=self.org_path,
                from_pool=by is not None, claimant_kind=by[0] if by else None, claimant_id=by[1] if by else None,
                fulfilled_at=self.fulfilled_at, waited_days=after_days,
            ),
        )

    def attach_photo(self, photo_id: str, content_type: str, size: int, sha256: str, max_photos: int,
                     now: datetime) -> None:
        self._check("attach_photo")
        if len(self.photo_ids) >= max_photos:
            raise RuleViolation(f"a wish has at most {max_photos} photos", field="files")
        self._emit(now, WishPhotoAttached(wish_id=self.id, photo_id=photo_id, org_path=self.org_path,
                                          content_type=content_type, size_bytes=size, sha256=sha256))

    def review(self, approved: bool, reason: str | None, reviewer_id: str, now: datetime,
               keep_photo_ids: list[str] | None = None) -> None:
        self._check("approve" if approved else "reject")
        if not approved and not (reason or "").strip():
            raise RuleViolation("say why the wish is not listed", field="reason")
        keep = sorted(set(keep_photo_ids or []))
        unknown = [p for p in keep if p not in self.photo_ids]
        if unknown:
            raise RuleViolation(f"no such photos on this wish: {', '.join(unknown)}", field="keep_photo_ids")
        self._emit(
            now,
            PoolWishReviewed(
                wish_id=self.id, org_path=self.org_path, approved=approved, reason=reason,
                reviewer_id=reviewer_id, kept_photo_ids=keep if approved else [],
            ),
        )

    def claim(self, claim_id: str, kind: ClaimantKind, claimant_id: str, limits: ServiceLimits,
              now: datetime) -> None:
        self._check("claim")
        self._emit(
            now,
            PoolWishClaimed(
                wish_id=self.id, claim_id=claim_id, org_path=self.org_path, claimant_kind=kind,
                claimant_id=claimant_id, deadline=now + timedelta(days=limits.wish_claim_days),
            ),
        )

    def lapse(self, now: datetime, given_up: bool = False, reason: str | None = None) -> None:
        """The claim returns to the pool: given up by the claimant (or the claiming cadre left),
        or past its deadline."""
        self._check("lapse")
        assert self.claim_id is not None and self.claimant is not None and self.claim_deadline
        if not given_up and now < self.claim_deadline:
            raise IllegalTransition("the claim is not past its deadline", current=self.state.value)
        self._emit(
            now,
            PoolClaimLapsed(
                wish_id=self.id, claim_id=self.claim_id, org_path=self.org_path,
                claimant_kind=self.claimant[0], claimant_id=self.claimant[1],
                reason=reason or ("given_up" if given_up else "deadline"),
            ),
        )

    def needs_yuan(self, limits: ServiceLimits) -> int:
        """What pledges may add up to: the wish's estimated value, or (none given) the org's cap
        on wish values in ``limits``, the cap the wish was raised under."""
        need = self.value if self.value is not None else limits.wish_max_value_yuan
        return min(need, MAX_VALUE_YUAN)

    def pledge(self, kind: ClaimantKind, contributor_id: str, amount: int, limits: ServiceLimits,
               now: datetime) -> None:
        """拼好愿: contributors club together for what the wish needs, not beyond it (more is no
        longer a micro-wish, and an unbounded total overflowed the read model)."""
        self._check("pledge")
        if amount <= 0:
            raise RuleViolation("pledge a positive amount", field="amount_yuan")
        need = self.needs_yuan(limits)
        left = need - self.pledged_yuan
        if left <= 0:
            raise DomainError(f"the wish is fully pledged (¥{self.pledged_yuan} of ¥{need})",
                              pledged_yuan=self.pledged_yuan, needs_yuan=need)
        if amount > left:
            raise RuleViolation(f"the wish needs only ¥{left} more (¥{self.pledged_yuan} of ¥{need} pledged)",
                                field="amount_yuan", remaining_yuan=left)
        self._emit(
            now,
            PoolContributionPledged(
                wish_id=self.id, org_path=self.org_path, contributor_kind=kind, contributor_id=contributor_id,
                amount_yuan=amount,
            ),
        )

    def expire(self, now: datetime, limits: ServiceLimits) -> None:
        self._check("expire")
        if now - self.raised_at < timedelta(days=limits.wish_expiry_days):
            raise IllegalTransition("the wish has not reached its expiry", current=self.state.value)
        self._emit(
            now, WishExpired(wish_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id,
                             org_path=self.org_path)
        )

    def withdraw(self, now: datetime) -> None:
        self._check("withdraw")
        self._emit(
            now, WishWithdrawn(wish_id=self.id, youth_id=self.youth_id, cadre_id=self.cadre_id,
                               org_path=self.org_path)
        )

    # -- state ----------------------------------------------------------------------------

    def _go(self, command: str) -> None:
        self.state = TRANSITIONS[command][self.state]
        self.touched_at = self.at

    def when_WishRaised(self, e: WishRaised) -> None:
        self.youth_id, self.cadre_id, self.org_path = e.youth_id, e.cadre_id, e.org_path
        self.category, self.value = e.category, e.estimated_value_yuan
        self.state, self.raised_at, self.touched_at = S.raised, self.at, self.at

    def when_WishAccepted(self, _e: WishAccepted) -> None:
        self._go("accept")

    def when_WishDeclined(self, _e: WishDeclined) -> None:
        self._go("decline")

    def when_WishStarted(self, _e: WishStarted) -> None:
        self._go("start")

    def when_WishFulfilled(self, e: WishFulfilled) -> None:
        self._go("fulfil")
        self.fulfilled_at = e.fulfilled_at
        self.fulfilled_by = (e.claimant_kind, e.claimant_id) if e.claimant_kind and e.claimant_id else None

    def when_WishConfirmed(self, _e: WishConfirmed) -> None:
        self._go("confirm")

    def when_WishDisputed(self, _e: WishDisputed) -> None:
        self._go("dispute")

    def when_WishReleasedToPool(self, e: WishReleasedToPool) -> None:
        self._go("cadre_left" if e.reason == "cadre_deactivated" else "release")

    def when_WishRelocated(self, e: WishRelocated) -> None:
        self.org_path = e.org_path

    def when_WishClosedUnconfirmed(self, _e: WishClosedUnconfirmed) -> None:
        self._go("close_unconfirmed")

    def when_WishPhotoAttached(self, e: WishPhotoAttached) -> None:
        self.photo_ids.append(e.photo_id)

    def when_PoolWishReviewed(self, e: PoolWishReviewed) -> None:
        self._go("approve" if e.approved else "reject")
        self.pooled = e.approved

    def when_PoolWishClaimed(self, e: PoolWishClaimed) -> None:
        self._go("claim")
        self.claim_id, self.claimant, self.claim_deadline = e.claim_id, (e.claimant_kind, e.claimant_id), e.deadline

    def when_PoolClaimLapsed(self, _e: PoolClaimLapsed) -> None:
        self._go("lapse")
        self.claim_id, self.claimant, self.claim_deadline = None, None, None

    def when_PoolContributionPledged(self, e: PoolContributionPledged) -> None:
        self.pledged_yuan += e.amount_yuan

    def when_WishExpired(self, _e: WishExpired) -> None:
        self._go("expire")

    def when_WishWithdrawn(self, _e: WishWithdrawn) -> None:
        self._go("withdraw")
