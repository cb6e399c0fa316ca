"""The support side end to end (issue 13, must-show 2), through the real send path, the
help desk's API and the customer's pages:

1. a policy re-statement with a points grant (3 points, 5 for customers of 5 years or
   more) and a 20 % holdout: every letter shows its recipient's new balance, and the ledger
   agrees; held-out customers get no letter and no points;
2. the help desk debits one customer's points through the API, incident by incident, until
   the balance drops to 1: the upsell letter goes exactly once (not at 2, not again at 0,
   not for a replayed request);
3. incidents closed 3 days ago bring the satisfaction survey; one closed yesterday not yet;
4. one customer rates 5 in a browser; a link scanner fetches all five links of another's
   survey: only the person's rating counts, the scanner's five clicks are reported as
   discarded; the campaign's figures show the grant and the holdout.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import Message

from flask import Flask
from sqlalchemy import select, update

from campaigns.audience import contacts
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import automations, scheduling
from campaigns.delivery.automations import StepInput
from campaigns.embedded.services import SMTPCatcher
from campaigns.models import Delivery, DeliveryState, LetterCategory, LetterKind
from campaigns.service import points, survey_results
from campaigns.tracking import results
from tests.factories import approve_legal, deliver, make_segment, make_version
from tests.tracking.test_end_to_end import CHROME, SCANNER
from tests.web.conftest import app
from tests.web.test_api import Api, make_key

__all__ = ["app"]  # the web app fixture, shared with the web tests

POLICY = ("<p>Dear {{ contact.first_name }}, email support stays free. After today you have "
          "{{ contact.service_points }} service points for priority phone support.</p>"
          '<p><a href="{{ acknowledge_url }}">I have read the terms</a></p>')  # fmt: skip
UPSELL = ("<p>{{ contact.first_name }}, you have {{ contact.service_points }} point left. "
          "Buy 5, get 6.</p>"
          '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip
SURVEY = ("<p>How did we do, {{ contact.first_name }}?</p><p>"
          + "".join(f'<a href="{{{{ rating_url({n}) }}}}">{n}</a> ' for n in range(1, 6))
          + '</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')  # fmt: skip
PEOPLE = 20  # customers 0–9 of 8 years, 10–19 of 2
LOW = "Your points are running low"


def _setup(db: Database) -> dict[str, int]:
    today = utcnow().date()
    with db.unit_of_work() as s:
        for n in range(PEOPLE):
            since = today - timedelta(days=365 * (8 if n < 10 else 2))
            contacts.create_contact(s, f"c{n}@example.com", first_name=f"C{n}",
                                    customer_since=since)  # fmt: skip
        terms = make_version(s, name="Policy re-statement", kind=LetterKind.POLICY,
                             category=LetterCategory.LEGAL, html=POLICY,
                             subject="Our support terms")  # fmt: skip
        campaign = scheduling.create_campaign(
            s, "Support terms 2026", segment_id=make_segment(s).id,
            letter_version_id=approve_legal(s, terms).id, holdout_percent=20,
            grant=scheduling.Grant(3, loyal_points=5, loyal_years=5),
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        upsell = make_version(s, name="Points running low", html=UPSELL,
                              subject="Your points are running low")  # fmt: skip
        automations.create_automation(s, "Upsell", trigger="points_low", threshold=1,
                                      steps=[StepInput(0, upsell.id)], enabled=True)  # fmt: skip
        survey = make_version(s, name="How did we do", kind=LetterKind.SURVEY, html=SURVEY,
                              category=LetterCategory.SERVICE,
                              subject="How did we do?")  # fmt: skip
        surveys = automations.create_automation(
            s, "Survey", trigger="incident_closed", steps=[StepInput(3, survey.id)],
            enabled=True,
        )  # fmt: skip
        return {"campaign": campaign.id, "survey_step": surveys.steps[0].id}


def _tick_and_send(db: Database, settings: Settings, smtp_server: SMTPCatcher) -> None:
    """One scheduler tick, its letters sent, and their grants written (as the workers do)."""
    with db.unit_of_work() as s:
        tick = scheduling.run_tick(s, now=utcnow(), caps=settings.caps)
    for batches in [tick.batches, *(launch.batches for launch in tick.launches)]:
        deliver(db, batches, smtp_url=smtp_server.url, settings=settings)
        with db.unit_of_work() as s:
            points.apply_grants(s, [i for batch in batches for i in batch])


def _text(letter: Message) -> str:
    (part,) = [p for p in letter.walk() if p.get_content_type() == "text/plain"]
    return part.get_payload(decode=True).decode()  # type: ignore[union-attr]


def _mailbox(smtp_server: SMTPCatcher) -> list[tuple[str, str, Message]]:
    """(recipient, subject, letter) of every letter the SMTP server received."""
    return [(m.recipients[0], str(m.message["Subject"]), m.message) for m in smtp_server.messages]


def _received(smtp_server: SMTPCatcher, subject: str, *to: str) -> list[tuple[str, Message]]:
    """(recipient, letter) of the letters of this subject (to these addresses, if given)."""
    return [(who, letter) for who, said, letter in _mailbox(smtp_server)
            if said == subject and (not to or who in to)]  # fmt: skip


def _links(letter: Message, kind: str) -> list[str]:
    """The paths of the letter's links of one kind ("s": ratings, "a": acknowledge)."""
    html = next(p for p in letter.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    return re.findall(rf'href="https?://[^/"]+(/{kind}/[^"]+)"', body)


def test_grant_holdout_upsell_survey_and_ratings_end_to_end(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    ids = _setup(db)
    _tick_and_send(db, settings, smtp_server)

    # 1. Each policy letter shows the recipient's new balance; the ledger agrees.
    with db.unit_of_work() as s:
        rows = {r.email: r for r in s.scalars(
            select(Delivery).where(Delivery.campaign_id == ids["campaign"]))}  # fmt: skip
        balances = points.balances(s, [r.contact_id for r in rows.values()])
    sent = {e for e, r in rows.items() if r.state == DeliveryState.SENT}
    held_out = {e for e, r in rows.items() if r.state == DeliveryState.HELD_OUT}
    assert len(sent) + len(held_out) == PEOPLE and 1 <= len(held_out) <= 8
    policy = {to: _text(letter) for to, letter in _received(smtp_server, "Our support terms")}
    assert set(policy) == sent
    for email in sent:
        expected = 5 if int(email[1:].split("@")[0]) < 10 else 3
        assert f"you have {expected} service points" in policy[email]
        assert balances[rows[email].contact_id] == expected
    for email in held_out:
        assert balances[rows[email].contact_id] == 0
    # The acknowledgment page shows the balance the letter was sent with, and the gift in it.
    (loyal_letter,) = [m for to, m in _received(smtp_server, "Our support terms")
                       if to == min(sent, key=lambda e: int(e[1:].split("@")[0]))]  # fmt: skip
    (ack,) = _links(loyal_letter, "a")
    page = app.test_client().get(ack).get_data(as_text=True)
    assert "Your service points when this letter was sent: 5, including 5 given with it." in page

    # 2. The help desk uses a customer's points, one incident at a time, through the API.
    api = Api(app.test_client(), make_key(db, name="Help desk"))
    customer = rows[min(sent, key=lambda e: (int(e[1:].split("@")[0]) < 10, e))]
    assert balances[customer.contact_id] == 3
    upsells_seen = []
    for n, balance_after in ((1, 2), (2, 1), (3, 0)):
        for _attempt in range(2):  # the help desk's retry replays the same key
            answer = api.post("/api/v1/incidents", {
                "contact_id": customer.contact_id, "channel": "phone", "chargeable": True,
                "points_used": 1, "summary": f"printer {n}", "closed_at": None,
            }, headers={"Idempotency-Key": f"desk-{n}"})  # fmt: skip
            assert answer.status_code in (200, 201), answer.get_json()
        balance = api.get(f"/api/v1/contacts/{customer.contact_id}/points").get_json()
        assert balance["balance"] == balance_after
        _tick_and_send(db, settings, smtp_server)
        upsells_seen.append(len(_received(smtp_server, LOW, customer.email)))
    assert upsells_seen == [0, 1, 1]  # at 1, once; not at 2, not again at 0
    (upsell,) = [letter for _, letter in _received(smtp_server, LOW)]
    assert "you have 1 point left" in _text(upsell)

    # 3. Incidents closed 3 days ago bring the survey; one closed yesterday does not yet.
    scanned = rows[sorted(sent - {customer.email})[0]]
    now = utcnow()
    closings = ((customer.contact_id, "s-1", now - timedelta(days=3)),
                (scanned.contact_id, "s-2", now - timedelta(days=3, hours=2)),
                (scanned.contact_id, "s-3", now - timedelta(days=1)))  # fmt: skip
    for contact_id, key, closed in closings:
        answer = api.post("/api/v1/incidents", {
            "contact_id": contact_id, "channel": "email",
            "opened_at": (closed - timedelta(hours=4)).isoformat(),
            "closed_at": closed.isoformat(),
        }, headers={"Idempotency-Key": key})  # fmt: skip
        assert answer.status_code == 201, answer.get_json()
    _tick_and_send(db, settings, smtp_server)
    _tick_and_send(db, settings, smtp_server)  # a second tick writes no second survey
    surveys = dict(_received(smtp_server, "How did we do?"))
    assert sorted(surveys) == sorted([customer.email, scanned.email])
    assert len(_received(smtp_server, "How did we do?")) == 2

    # 4. A person rates 5; a scanner fetches every rating link of the other survey.
    with db.unit_of_work() as s:  # read an hour after they went out
        s.execute(update(Delivery).where(Delivery.automation_step_id == ids["survey_step"])
                  .values(sent_at=utcnow() - timedelta(hours=1)))  # fmt: skip
    web = app.test_client(use_cookies=False)
    person_links, scanner_links = (_links(surveys[e], "s")
                                   for e in (customer.email, scanned.email))  # fmt: skip
    assert len(person_links) == len(scanner_links) == 5
    assert web.get(person_links[4], headers={"User-Agent": CHROME}).status_code == 200
    for link in scanner_links:
        web.get(link, headers={"User-Agent": SCANNER})

    with db.unit_of_work() as s:
        (line,) = [ln for ln in survey_results.results(s, "step").lines
                   if ln.key == f"step:{ids['survey_step']}"]  # fmt: skip
        figures = line.figures
        granted = points.granted_by_campaign(s, ids["campaign"])
        results.refresh(s, window=timedelta(days=settings.results.attribution_days))
    assert (figures.sent, figures.responses, figures.satisfied, figures.discarded) == (2, 1, 1, 5)
    assert figures.csat == 1.0
    assert granted == (len(sent), sum(balances[rows[e].contact_id] for e in sent))
    with db.unit_of_work() as s:
        (campaign,) = [ln for ln in results.report(s, "campaign").lines
                       if ln.label == "Support terms 2026"]  # fmt: skip
    assert (campaign.figures.counts["sent"], campaign.figures.counts["held_out"]) == (
        len(sent),
        len(held_out),
    )
