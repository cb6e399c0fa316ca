"""Survey responses: a person's click records, a scanner's clicks are discarded (and undo what
their first one recorded), the page's confirmation records, changes for 7 days, then final."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from campaigns.audience import erasure
from campaigns.db import Database
from campaigns.errors import TokenInvalid, ValidationError
from campaigns.models import DeliveryState, Event, EventKind, SurveyResponse
from campaigns.service import surveys
from campaigns.service.surveys import Outcome
from tests.service.survey_data import PERSON, person_clicks, survey_row, survey_version

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=3)
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel)"


def _letter(db: Database, scale: str = "csat", email: str = "ada@example.com") -> int:
    with db.unit_of_work() as s:
        return survey_row(s, email, survey_version(s, scale=scale, name=email), SENT)


def _recorded(db: Database, delivery_id: int) -> tuple[int, str] | None:
    with db.unit_of_work() as s:
        found = surveys.response_of(s, delivery_id)
        return (found.score, found.comment) if found else None


def _ratings(db: Database, delivery_id: int) -> list[tuple[int, bool]]:
    """The rating clicks of a letter: (score, whether a machine's), in order."""
    with db.unit_of_work() as s:
        rows = s.execute(
            select(Event.detail, Event.is_machine)
            .where(Event.delivery_id == delivery_id, Event.kind == EventKind.RATING)
            .order_by(Event.id)
        )  # fmt: skip
        return [(detail["score"], machine) for detail, machine in rows]


def test_a_persons_click_records_the_rating_once_per_letter(db: Database) -> None:
    delivery = _letter(db)
    with db.unit_of_work() as s:
        answer = person_clicks(s, delivery, 4, LATER)
        assert (answer.outcome, answer.score) == (Outcome.RECORDED, 4)
        assert answer.scores == [1, 2, 3, 4, 5]
        assert answer.changeable_until == LATER + timedelta(days=7)
    with db.unit_of_work() as s:
        again = person_clicks(s, delivery, 4, LATER + timedelta(minutes=1))
        assert again.outcome == Outcome.UNCHANGED
    with db.unit_of_work() as s:
        response = s.scalars(select(SurveyResponse)).one()
        assert (response.scale, response.score, response.remote_addr) == ("csat", 4, "203.0.113.7")
        assert response.detractor_at is None and response.responded_at == LATER
    assert _ratings(db, delivery) == [(4, False), (4, False)]


def test_a_scanner_clicking_all_five_links_within_a_second_records_nothing(db: Database) -> None:
    delivery = _letter(db)
    # Its first click looks like a person's (a browser's agent, long after delivery) and
    # records a 1; the second, 0.2 s later on another score, shows what it was.
    for n in range(5):
        with db.unit_of_work() as s:
            person_clicks(s, delivery, n + 1, LATER + timedelta(seconds=0.2 * n))
    assert _recorded(db, delivery) is None
    assert _ratings(db, delivery) == [(n, True) for n in range(1, 6)]
    with db.unit_of_work() as s:
        assert s.scalar(select(SurveyResponse.id)) is None


def test_a_scanners_clicks_leave_the_persons_earlier_rating_as_it_was(db: Database) -> None:
    delivery = _letter(db)
    with db.unit_of_work() as s:
        person_clicks(s, delivery, 5, LATER)
        surveys.answer(s, delivery, 5, comment="Quick and kind", client=PERSON,
                       now=LATER + timedelta(minutes=1))  # fmt: skip
    rescan = LATER + timedelta(hours=1)
    for n in (1, 2, 3):
        with db.unit_of_work() as s:
            person_clicks(s, delivery, n, rescan + timedelta(seconds=0.3 * n))
    assert _recorded(db, delivery) == (5, "Quick and kind")
    with db.unit_of_work() as s:
        response = s.scalars(select(SurveyResponse)).one()
        assert response.detractor_at is None and response.changed_at == LATER + timedelta(minutes=1)


def test_a_machines_click_asks_for_confirmation_and_the_confirmation_records(
    db: Database,
) -> None:
    delivery = _letter(db)
    with db.unit_of_work() as s:
        answer = person_clicks(s, delivery, 2, LATER, agent=SCANNER)
        assert (answer.outcome, answer.response) == (Outcome.CONFIRM, None)
    assert _recorded(db, delivery) is None
    with db.unit_of_work() as s:
        answer = surveys.answer(s, delivery, 2, client=PERSON, now=LATER + timedelta(seconds=20))
        assert answer.outcome == Outcome.RECORDED
    with db.unit_of_work() as s:
        response = s.scalars(select(SurveyResponse)).one()
        assert (response.score, response.detractor_at) == (2, LATER + timedelta(seconds=20))
    # A click moments after delivery is a gateway fetching it, whatever its agent says.
    early = _letter(db, email="bo@example.com")
    with db.unit_of_work() as s:
        assert person_clicks(s, early, 5, SENT + timedelta(seconds=2)).outcome == Outcome.CONFIRM
    assert _ratings(db, early) == [(5, True)]


def test_a_rating_changes_for_seven_days_and_then_is_final(db: Database) -> None:
    delivery = _letter(db, scale="nps")
    with db.unit_of_work() as s:
        assert person_clicks(s, delivery, 3, LATER).outcome == Outcome.RECORDED
    with db.unit_of_work() as s:
        answer = surveys.answer(s, delivery, 9, comment="  Sorted in a day  ", client=PERSON,
                                now=LATER + timedelta(days=6))  # fmt: skip
        assert (answer.outcome, answer.scores) == (Outcome.CHANGED, list(range(11)))
    assert _recorded(db, delivery) == (9, "Sorted in a day")
    with db.unit_of_work() as s:
        late = LATER + timedelta(days=7, minutes=1)
        assert person_clicks(s, delivery, 0, late).outcome == Outcome.CLOSED
        closed = surveys.answer(s, delivery, 0, comment="changed my mind", client=PERSON, now=late)
        assert closed.outcome == Outcome.CLOSED and closed.response is not None
        assert closed.response.score == 9
    assert _recorded(db, delivery) == (9, "Sorted in a day")
    with db.unit_of_work() as s:
        response = s.scalars(select(SurveyResponse)).one()
        # A detractor at first (3 on 0–10): the time it became one stays (its webhook went).
        assert response.detractor_at == LATER
        assert response.changed_at == LATER + timedelta(days=6)


def test_links_off_the_scale_or_of_letters_not_delivered_are_refused(db: Database) -> None:
    delivery = _letter(db)
    with db.unit_of_work() as s:
        failed = survey_row(s, "cy@example.com", survey_version(s, name="Other"), SENT,
                            state=DeliveryState.FAILED)  # fmt: skip
    for delivery_id, score in ((delivery, 0), (delivery, 6), (failed, 3), (999, 3)):
        with db.unit_of_work() as s, pytest.raises(TokenInvalid):
            person_clicks(s, delivery_id, score, LATER)
    with db.unit_of_work() as s, pytest.raises(ValidationError, match="at most 2,000"):
        surveys.answer(s, delivery, 3, comment="x" * 2001, client=PERSON, now=LATER)
    assert _recorded(db, delivery) is None


def test_erasure_keeps_the_score_and_removes_the_comment_and_the_client(db: Database) -> None:
    delivery = _letter(db)
    with db.unit_of_work() as s:
        person_clicks(s, delivery, 2, LATER)
        surveys.answer(s, delivery, 2, comment="Ada Lovelace, call me on 0171 2345",
                       client=PERSON, now=LATER + timedelta(minutes=1))  # fmt: skip
        contact_id = s.scalars(select(SurveyResponse.contact_id)).one()
    with db.unit_of_work() as s:
        erasure.erase_contact(s, contact_id)
    with db.unit_of_work() as s:
        response = s.scalars(select(SurveyResponse)).one()
        assert (response.score, response.comment, response.remote_addr, response.user_agent) == (
            2, "", "", "")  # fmt: skip
    with db.unit_of_work() as s, pytest.raises(TokenInvalid):  # the link leads nowhere now
        person_clicks(s, delivery, 5, LATER + timedelta(hours=1))


def test_a_scanners_clicks_arriving_all_at_once_record_nothing(db: Database) -> None:
    delivery = _letter(db)
    start, errors = threading.Barrier(5), []

    def scanner_clicks(score: int) -> None:
        start.wait()
        try:
            with db.unit_of_work() as s:  # each click waits for the letter's lock in turn
                person_clicks(s, delivery, score, LATER + timedelta(milliseconds=score))
        except Exception as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=scanner_clicks, args=(n,)) for n in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _recorded(db, delivery) is None
    assert sorted(_ratings(db, delivery)) == [(n, True) for n in range(1, 6)]
