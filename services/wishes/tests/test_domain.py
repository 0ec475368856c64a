"""The pure domain: transition table properties, deadlines, inherited org rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tuanlian.shared.contracts.contacts import FiveOnesPeriod, ServiceLimits
from tuanlian.shared.contracts.wishes import ClaimantKind, WishCategory
from tuanlian.shared.errors import DomainError, IllegalTransition, RuleViolation
from tuanlian.wishes.domain.ballot import Ballot, Tally
from tuanlian.wishes.domain.rules import RuleSet, limits_for, rating_period
from tuanlian.wishes.domain.wish import MAX_VALUE_YUAN, TERMINAL, TRANSITIONS, Wish, WishState

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LIMITS = ServiceLimits()
COMMANDS = ["accept", "decline", "start", "fulfil", "confirm", "dispute", "release", "auto_release", "approve",
            "reject", "claim", "lapse", "give_up", "pledge", "expire", "withdraw", "cadre_left", "relocate",
            "close_unconfirmed", "attach_photo"]


def new_wish() -> Wish:
    return Wish.raise_("w1", "y1", "c1", "/a/b", WishCategory.study, 100, LIMITS, True, T0)


def run(w: Wish, cmd: str, now: datetime) -> None:
    match cmd:
        case "accept" | "start" | "confirm" | "withdraw":
            getattr(w, cmd)(now)
        case "decline":
            w.decline("no", now)
        case "fulfil":
            w.fulfil(now)
        case "dispute":
            w.dispute(None, now)
        case "release":
            w.release(now)
        case "auto_release":
            w.release(now, LIMITS)
        case "approve" | "reject":
            w.review(cmd == "approve", "why", "admin", now)
        case "claim":
            w.claim("k1", ClaimantKind.partner, "p1", LIMITS, now)
        case "lapse":
            w.lapse(now)
        case "give_up":
            w.lapse(now, given_up=True)
        case "pledge":
            w.pledge(ClaimantKind.cadre, "c2", 50, LIMITS, now)
        case "expire":
            w.expire(now, LIMITS)
        case "cadre_left":
            w.cadre_left(now)
        case "relocate":
            w.relocate(f"/moved/{w.version}", now)  # always a new path
        case "close_unconfirmed":
            w.close_unconfirmed(now, 14)
        case "attach_photo":
            w.attach_photo(f"p{w.version}", "image/png", 10, "00", 3, now)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(COMMANDS), st.integers(0, 40)), max_size=25))
def test_random_command_sequences_never_reach_an_illegal_state(steps: list[tuple[str, int]]) -> None:
    w, now = new_wish(), T0
    for cmd, days in steps:
        now += timedelta(days=days)
        before, version = w.state, w.version
        try:
            run(w, cmd, now)
        except DomainError as exc:
            # Refused: nothing recorded, state unchanged, the current state named for a 409.
            assert (w.state, w.version) == (before, version)
            if isinstance(exc, IllegalTransition):
                assert exc.details["current"] == before.value
            continue
        assert before not in TERMINAL, f"{cmd} changed a closed wish"
        key = {"give_up": "lapse"}.get(cmd, cmd)
        assert w.state == TRANSITIONS[key][before]
        assert w.version == version + 1
        # Invariants: a claim exists while claimed and never in the open pool; confirmed means fulfilled.
        assert w.state is not WishState.claimed or w.claim_id is not None
        assert w.state is not WishState.pooled or w.claim_id is None
        if w.state in (WishState.confirmed, WishState.closed_unconfirmed):
            assert w.fulfilled_at is not None
        assert len(w.photo_ids) <= 3
        assert w.pledged_yuan <= 100  # never past the wish's estimated value
    # The rebuilt aggregate equals the one that decided (state comes only from events).
    replay = Wish.rehydrate("w1", w.pending)
    assert (replay.state, replay.version, replay.claim_id, replay.org_path, replay.photo_ids) == (
        w.state, w.version, w.claim_id, w.org_path, w.photo_ids)


def _pooled(value: int | None, limits: ServiceLimits = LIMITS) -> Wish:
    w = Wish.raise_("w1", "y1", "c1", "/a/b", WishCategory.study, value, limits, True, T0)
    w.release(T0)
    w.review(True, None, "a", T0)
    return w


def test_pledges_add_up_to_what_the_wish_needs_and_no_further() -> None:
    w = _pooled(300)
    w.pledge(ClaimantKind.cadre, "c2", 200, LIMITS, T0)
    with pytest.raises(RuleViolation) as over:
        w.pledge(ClaimantKind.org, "b1", 101, LIMITS, T0)
    assert over.value.details == {"field": "amount_yuan", "remaining_yuan": 100}
    w.claim("k", ClaimantKind.partner, "p", LIMITS, T0)
    w.pledge(ClaimantKind.org, "b1", 100, LIMITS, T0)  # claimed wishes take pledges too
    with pytest.raises(DomainError) as full:
        w.pledge(ClaimantKind.cadre, "c3", 1, LIMITS, T0)
    assert full.value.status == 409 and full.value.details == {"pledged_yuan": 300, "needs_yuan": 300}
    assert Wish.rehydrate("w1", w.pending).pledged_yuan == 300
    # No estimate: the org's cap on wish values bounds the total; a huge cap, the service's own.
    unpriced = _pooled(None, ServiceLimits(wish_max_value_yuan=80))
    with pytest.raises(RuleViolation):
        unpriced.pledge(ClaimantKind.cadre, "c2", 81, ServiceLimits(wish_max_value_yuan=80), T0)
    assert _pooled(None).needs_yuan(ServiceLimits(wish_max_value_yuan=10**12)) == MAX_VALUE_YUAN


def test_an_unconfirmed_fulfilment_closes_only_after_the_wait_and_is_not_a_confirmation() -> None:
    w = new_wish()
    w.accept(T0)
    w.start(T0)
    w.fulfil(T0 + timedelta(days=1))
    with pytest.raises(IllegalTransition) as refused:
        w.close_unconfirmed(T0 + timedelta(days=14), 14)
    assert refused.value.details["current"] == "fulfilled"
    w.close_unconfirmed(T0 + timedelta(days=15), 14)
    [closed] = w.pending[-1:]
    assert closed.event_type == "WishClosedUnconfirmed" and w.state is WishState.closed_unconfirmed
    with pytest.raises(IllegalTransition):
        w.confirm(T0 + timedelta(days=16))


def test_problem_list_status_table() -> None:
    from tuanlian.wishes.domain.voice import IssueStatus, VoiceIssue

    i = VoiceIssue.group("i1", "/a", ["p1", "p2"], T0)
    i.update([], None, T0, ["p2"])
    assert i.post_ids == ["p1"]
    with pytest.raises(DomainError):
        i.update([], None, T0, ["p1"])  # at least one post stays
    i.update([], IssueStatus.reported, T0)
    for bad in (IssueStatus.open, IssueStatus.in_progress):
        with pytest.raises(IllegalTransition) as refused:
            i.update([], bad, T0)
        assert refused.value.details["current"] == "reported"
    with pytest.raises(IllegalTransition):
        i.update(["p3"], None, T0)  # posts of a reported issue are frozen
    i.update([], IssueStatus.resolved, T0)
    i.update([], IssueStatus.open, T0)
    i.update(["p3"], None, T0)
    assert i.post_ids == ["p1", "p3"] and i.version == 6


def test_deadlines_are_decided_by_the_aggregate() -> None:
    w = new_wish()
    with pytest.raises(IllegalTransition):
        w.release(T0 + timedelta(days=6), LIMITS)  # default: 7 untouched days
    w.release(T0 + timedelta(days=7), LIMITS)
    w.review(True, None, "a", T0 + timedelta(days=8))
    w.claim("k", ClaimantKind.partner, "p", LIMITS, T0 + timedelta(days=8))
    assert w.claim_deadline == T0 + timedelta(days=22)
    with pytest.raises(IllegalTransition):
        w.lapse(T0 + timedelta(days=21))
    w.lapse(T0 + timedelta(days=22))
    assert w.state is WishState.pooled
    with pytest.raises(IllegalTransition):
        w.expire(T0 + timedelta(days=89), LIMITS)
    w.expire(T0 + timedelta(days=90), LIMITS)


def test_rules_inherit_from_the_nearest_ancestor_in_force() -> None:
    sets = [RuleSet("/a", date(2026, 1, 1), ServiceLimits(wish_max_value_yuan=300)),
            RuleSet("/a", date(2026, 6, 1), ServiceLimits(wish_max_value_yuan=400)),
            RuleSet("/a/b", date(2026, 7, 1), ServiceLimits(wish_max_value_yuan=200)),
            RuleSet("/ab", date(2020, 1, 1), ServiceLimits(wish_max_value_yuan=1))]
    assert limits_for("/a/b/c", date(2025, 1, 1), sets).wish_max_value_yuan == 500  # defaults
    assert limits_for("/a/b/c", date(2026, 2, 1), sets).wish_max_value_yuan == 300
    assert limits_for("/a/b/c", date(2026, 6, 2), sets).wish_max_value_yuan == 400
    assert limits_for("/a/b/c", date(2026, 7, 1), sets).wish_max_value_yuan == 200
    assert limits_for("/a/x", date(2026, 7, 1), sets).wish_max_value_yuan == 400
    assert rating_period(T0, FiveOnesPeriod.quarter) == "2026Q1"
    assert rating_period(T0, FiveOnesPeriod.month) == "2026-03"
    assert rating_period(T0, FiveOnesPeriod.two_months) == "2026B2"


@pytest.mark.parametrize(("tally", "published", "flag"), [
    (Tally(1, 1, 4), True, True), (Tally(2, 1, 3), True, False), (Tally(0, 0, 4), False, False)])
def test_ballot_publishes_above_turnout_and_flags_a_majority_unsatisfied(
        tally: Tally, published: bool, flag: bool) -> None:
    b = Ballot.open("b", "br", "/a/br", "sec", 2026, 10 if published else 9, T0 + timedelta(days=1), T0)
    with pytest.raises(IllegalTransition):
        b.close(tally, LIMITS, T0)  # still open and not closed early
    b.close(tally, LIMITS, T0 + timedelta(days=1))
    [closed] = b.pending[-1:]
    assert closed.published is published and closed.reelection_flag is flag  # type: ignore[attr-defined]
    if not published:
        assert closed.unsatisfied is None  # type: ignore[attr-defined]
