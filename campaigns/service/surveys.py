"""Satisfaction surveys: a customer's rating of a survey letter, given with one click.

A rating link (`/s/<token>`, a letter's `rating_url(n)`) names a ledger row and a score on
the letter's scale: CSAT 1–5 or NPS 0–10 (`Letter.survey_scale`). A click the machine-traffic
rules take for a person's records the response, one per ledger row. Link scanners follow
every link of a letter: their clicks record nothing but an event flagged as a machine's
(counted as discarded), and the page asks whoever is there to confirm. When a scanner's
first click looked like a person's, its next one (another score within a second) shows what
it was: that first click is flagged too and what it recorded is undone.

A later click, or the page's buttons and comment box, change the response for CHANGE_WINDOW
after it was first given; after that it is final. The web edge judges each click with the
tracking area's rules and hands the judge in (`click(..., judge=...)`): this area does not
import tracking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from campaigns.db import utcnow
from campaigns.errors import TokenInvalid, ValidationError
from campaigns.models import (
    DELIVERED_STATES,
    SURVEY_SCORES,
    Contact,
    Delivery,
    Event,
    EventKind,
    Letter,
    LetterVersion,
    SurveyResponse,
    SurveyScale,
)

# Who would rather not have been asked: CSAT 1–2, NPS 0–6 (and satisfied: CSAT 4–5;
# promoters: NPS 9–10).
DETRACTORS = {SurveyScale.CSAT: range(1, 3), SurveyScale.NPS: range(0, 7)}
CHANGE_WINDOW = timedelta(days=7)
COMMENT_LIMIT = 2000
# The clicks of a letter a judge is shown beside a new one: a scanner's come within seconds.
RECENT = timedelta(minutes=1)
_CLICKS = (EventKind.CLICK, EventKind.RENEWAL_CLICK, EventKind.RATING)

# A judge of a rating click (campaigns.tracking.machines.judge_click, bound to the request):
# given when the letter was sent, the letter's recent clicks as (which link, when) with the
# new one last, and the time, it says why the new click was a machine's (None: a person's)
# and which of the earlier ones now look like a machine's (their positions).
Judge = Callable[..., tuple[str | None, set[int]]]


def is_detractor(scale: str, score: int) -> bool:
    return score in DETRACTORS[SurveyScale(scale)]


class Outcome(StrEnum):
    RECORDED = "recorded"  # a first response
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # the same score again (or the same comment)
    CONFIRM = "confirm"  # a machine's click: nothing recorded, the page asks to confirm
    CLOSED = "closed"  # the change window is over: the response stays as it was


@dataclass(frozen=True)
class Client:
    """Who sent the request, as the web edge saw it."""

    remote_addr: str = ""
    user_agent: str = ""


@dataclass(frozen=True)
class Answer:
    """What the rating page shows: what happened, the score the link or button chose, the
    scale, and the response as it now stands (None: no response yet)."""

    outcome: Outcome
    score: int
    scale: SurveyScale
    response: SurveyResponse | None

    @property
    def scores(self) -> list[int]:
        return list(SURVEY_SCORES[self.scale])

    @property
    def changeable_until(self) -> datetime | None:
        return self.response.responded_at + CHANGE_WINDOW if self.response else None


@dataclass(frozen=True)
class _Target:
    delivery_id: int
    contact_id: int
    sent_at: datetime | None
    scale: SurveyScale


def _target(session: Session, delivery_id: int, score: int) -> _Target:
    """The delivered letter a rating link names, locked (PostgreSQL) so that the clicks of
    one letter, which a scanner makes all at once, are judged one after the other."""
    row = session.execute(
        select(Delivery.id, Delivery.contact_id, Delivery.sent_at, Delivery.state,
               Letter.survey_scale, Contact.erased_at)
        .join(Contact, Contact.id == Delivery.contact_id)
        .join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .where(Delivery.id == delivery_id)
        .with_for_update(of=Delivery)
    ).one_or_none()  # fmt: skip
    if row is None or row.state not in DELIVERED_STATES or row.erased_at is not None:
        raise TokenInvalid("this rating link does not belong to a letter we sent")
    scale = SurveyScale(row.survey_scale)
    if score not in SURVEY_SCORES[scale]:
        raise TokenInvalid(f"this letter does not rate from {score}")
    return _Target(row.id, row.contact_id, row.sent_at, scale)


def response_of(session: Session, delivery_id: int) -> SurveyResponse | None:
    return session.scalar(select(SurveyResponse).where(SurveyResponse.delivery_id == delivery_id))


def click(
    session: Session, delivery_id: int, score: int, *, judge: Judge, client: Client,
    now: datetime | None = None,
) -> Answer:  # fmt: skip
    """A click on a rating link: record or change the response when `judge` takes it for a
    person's; otherwise record only the click, flagged as a machine's. TokenInvalid when the
    link names no delivered letter or a score off its scale."""
    now = now or utcnow()
    target = _target(session, delivery_id, score)
    response = response_of(session, delivery_id)
    earlier = session.execute(
        select(Event.id, Event.kind, Event.link_id, Event.detail, Event.occurred_at,
               Event.is_machine)
        .where(Event.delivery_id == delivery_id, Event.kind.in_(_CLICKS),
               Event.occurred_at >= now - RECENT)
        .order_by(Event.occurred_at, Event.id)
    ).all()  # fmt: skip
    clicks = [(_link(row.kind, row.link_id, row.detail), row.occurred_at) for row in earlier]
    why, flagged = judge(sent_at=target.sent_at, clicks=[*clicks, (f"rating:{score}", now)],
                         now=now)  # fmt: skip
    for position in sorted(flagged):
        row = earlier[position]
        if not row.is_machine:
            flagged_detail = {**(row.detail or {}), "machine": "links-together"}
            session.execute(update(Event).where(Event.id == row.id)
                            .values(is_machine=True, detail=flagged_detail))  # fmt: skip
        if response is not None and response.click_event_id == row.id:
            response = _undo(session, response, (row.detail or {}).get("before"))
    detail: dict[str, Any] = {"score": score}
    if why is not None:
        detail["machine"] = why
    event = Event(kind=EventKind.RATING, delivery_id=delivery_id, contact_id=target.contact_id,
                  occurred_at=now, user_agent=client.user_agent[:500],
                  is_machine=why is not None, detail=detail)  # fmt: skip
    session.add(event)
    session.flush()
    if why is not None:
        return _unrecorded(target, response, score, now)
    before = _state(response)
    answer = _apply(session, target, response, score, comment=None, client=client, now=now,
                    click_event_id=event.id)  # fmt: skip
    if answer.outcome in (Outcome.RECORDED, Outcome.CHANGED):
        event.detail = {**detail, "applied": True, "before": before}
    return answer


def answer(
    session: Session, delivery_id: int, score: int, *, comment: str | None = None,
    client: Client, now: datetime | None = None,
) -> Answer:  # fmt: skip
    """The page's confirmation, change or comment (a person's POST): record or change the
    response to `score`, and its comment when one is given ("" clears it)."""
    now = now or utcnow()
    if comment is not None:
        comment = comment.strip()
        if len(comment) > COMMENT_LIMIT:
            raise ValidationError(f"a comment has at most {COMMENT_LIMIT:,} characters",
                                  field="comment")  # fmt: skip
    target = _target(session, delivery_id, score)
    response = response_of(session, delivery_id)
    return _apply(session, target, response, score, comment=comment, client=client, now=now,
                  click_event_id=None)  # fmt: skip


def look(session: Session, delivery_id: int, score: int, *, now: datetime | None = None) -> Answer:
    """What the page would show for a rating link, recording nothing (staff trying a letter's
    links, a form refused)."""
    target = _target(session, delivery_id, score)
    return _unrecorded(target, response_of(session, delivery_id), score, now or utcnow())


def _unrecorded(
    target: _Target, response: SurveyResponse | None, score: int, now: datetime
) -> Answer:
    """The page for a score not recorded: asking to confirm it, unless it is the score
    recorded already or the response can no longer change."""
    if response is not None and response.score == score:
        return Answer(Outcome.UNCHANGED, score, target.scale, response)
    if response is not None and not _open(response, now):
        return Answer(Outcome.CLOSED, score, target.scale, response)
    return Answer(Outcome.CONFIRM, score, target.scale, response)


def _open(response: SurveyResponse, now: datetime) -> bool:
    return now <= response.responded_at + CHANGE_WINDOW


def _apply(
    session: Session, target: _Target, response: SurveyResponse | None, score: int, *,
    comment: str | None, client: Client, now: datetime, click_event_id: int | None,
) -> Answer:  # fmt: skip
    if response is None:
        response = SurveyResponse(
            delivery_id=target.delivery_id, contact_id=target.contact_id, scale=target.scale,
            score=score, comment=comment or "", responded_at=now,
            remote_addr=client.remote_addr[:64], user_agent=client.user_agent[:500],
            detractor_at=now if is_detractor(target.scale, score) else None,
            click_event_id=click_event_id,
        )  # fmt: skip
        session.add(response)
        session.flush()
        return Answer(Outcome.RECORDED, score, target.scale, response)
    if not _open(response, now):
        return Answer(Outcome.CLOSED, score, target.scale, response)
    changed = response.score != score or (comment is not None and comment != response.comment)
    if not changed:
        return Answer(Outcome.UNCHANGED, score, target.scale, response)
    if is_detractor(target.scale, score) and not is_detractor(target.scale, response.score):
        response.detractor_at = now
    response.score = score
    if comment is not None:
        response.comment = comment
    response.changed_at, response.click_event_id = now, click_event_id
    response.remote_addr, response.user_agent = client.remote_addr[:64], client.user_agent[:500]
    session.flush()
    return Answer(Outcome.CHANGED, score, target.scale, response)


def _state(response: SurveyResponse | None) -> dict[str, Any] | None:
    """What a click is about to change, kept with it so that it can be undone."""
    if response is None:
        return None
    return {
        "score": response.score, "click_event_id": response.click_event_id,
        "changed_at": _iso(response.changed_at), "detractor_at": _iso(response.detractor_at),
    }  # fmt: skip


def _undo(
    session: Session, response: SurveyResponse, before: dict[str, Any] | None
) -> SurveyResponse | None:
    """Take back what a click found to be a machine's recorded: the response as it was
    before it, or none."""
    if before is None:
        session.execute(delete(SurveyResponse).where(SurveyResponse.id == response.id))
        session.expunge(response)
        return None
    response.score, response.click_event_id = before["score"], before["click_event_id"]
    response.changed_at = _time(before["changed_at"])
    response.detractor_at = _time(before["detractor_at"])
    session.flush()
    return response


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _link(kind: str, link_id: int | None, detail: dict[str, Any] | None) -> str:
    """Which link of a letter a click followed: different links, different names."""
    detail = detail or {}
    if kind == EventKind.RATING:
        return f"rating:{detail.get('score')}"
    if kind == EventKind.RENEWAL_CLICK:
        return f"renewal:{detail.get('contract_id')}"
    return f"link:{link_id}"
