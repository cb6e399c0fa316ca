"""Unsubscribe, one-click (RFC 8058), the preference centre, view online and acknowledgment,
as a customer (or a mail provider, or a link scanner) reaches them from a real letter."""

from __future__ import annotations

import csv
import io
import re
from email.message import Message

import pytest
from flask import Flask
from sqlalchemy import func, select

from campaigns.accounts import users
from campaigns.audience import erasure
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.delivery.tokens import Tokens
from campaigns.embedded.services import SMTPCatcher
from campaigns.letters import approvals
from campaigns.models import (
    Acknowledgment,
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Event,
    KindOptOut,
    LetterCategory,
    LetterKind,
    Role,
)
from tests.factories import launch_now, make_contact, make_segment, make_version
from tests.web.conftest import csrf_token, login

PHONE = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) "
                       "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 "
                       "Safari/604.1"}  # fmt: skip
LINKS = ('<p>Dear {{ contact.first_name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'
         ' · <a href="{{ preferences_url }}">Preferences</a>'
         ' · <a href="{{ acknowledge_url }}">I have read it</a>'
         ' · <a href="{{ view_online_url }}">View online</a>'
         ' · <a href="{{ rating_url(5) }}">Rate us</a></p>')  # fmt: skip


def send_letter(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, *, kind: LetterKind,
    category: LetterCategory, email: str = "ada@example.com", locale: str = "en",
) -> tuple[int, Message]:  # fmt: skip
    """One letter of this kind and category, sent to the SMTP server by the real send path."""
    with db.unit_of_work() as s:
        make_contact(s, email, first_name="Ada", locale=locale)
        version = make_version(s, name=f"{kind} {category} {email}", kind=kind, category=category,
                               html=LINKS)  # fmt: skip
        if version.requires_approval:  # a legal letter: a second person approved it
            checker = users.create_user(s, "legal@example.com", "a long password 123",
                                        role=Role.EDITOR)  # fmt: skip
            approvals.approve(s, version.id, user_id=checker.id)
        campaign = scheduling.create_campaign(
            s, f"{kind} to {email}", segment_id=make_segment(s, f"only {email}").id,
            letter_version_id=version.id,
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
    (batch,) = launch_now(db)  # the contact is the only one: the campaign is for them
    mailer = SMTPMailer(smtp_server.url)
    try:
        result = sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    finally:
        mailer.close()
    assert result.sent == 1
    (delivery_id,) = batch
    (received,) = smtp_server.wait_for(1)
    return delivery_id, received.message


def link(letter: Message, path: str) -> str:
    """The path of one of the letter's own links (`/u/`, `/p/`, `/a/`, `/v/`)."""
    html = next(p for p in letter.walk() if p.get_content_type() == "text/html")
    body = html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    match = re.search(rf'href="https?://[^/"]+({path}[A-Za-z0-9._-]+)"', body)
    assert match, f"no {path} link in the letter"
    return match.group(1)


def status(db: Database, email: str) -> ContactStatus:
    with db.unit_of_work() as s:
        return s.scalars(select(Contact.status).where(Contact.email == email)).one()


def count(db: Database, model: type) -> int:
    with db.unit_of_work() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_one_click_from_the_header_unsubscribes_at_once_without_cookie_or_csrf(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.OTHER,
                            category=LetterCategory.MARKETING)  # fmt: skip
    assert letter["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header_url = letter["List-Unsubscribe"].strip("<>")
    path = header_url.split("://", 1)[1].partition("/")[1:]
    path = "".join(path)

    client = app.test_client(use_cookies=False)
    # A scanner fetches it first: GET and HEAD show the page and change nothing.
    assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200
    assert status(db, "ada@example.com") == ContactStatus.ACTIVE

    # Exactly what Gmail sends (RFC 8058): a POST with this body, no cookie, no token.
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"},
                         content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert answer.status_code == 200
    assert status(db, "ada@example.com") == ContactStatus.UNSUBSCRIBED
    with db.unit_of_work() as s:
        (event,) = s.scalars(select(Event).where(Event.kind == "unsubscribe"))
        assert event.detail == {"scope": "marketing", "one_click": True}
    # Sent again (providers retry), nothing more happens.
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert count(db, Event) == 1


def test_the_unsubscribe_page_asks_then_unsubscribes_and_resubscribes_with_one_click(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.OTHER,
                            category=LetterCategory.MARKETING)  # fmt: skip
    path = link(letter, "/u/")
    customer = app.test_client()
    page = customer.get(path, headers=PHONE).get_data(as_text=True)
    assert "Stop receiving offers and news" in page and "ada@example.com" in page

    # The page's own button is a form like any other: without its CSRF token, refused.
    assert customer.post(path, data={}).status_code == 400
    assert status(db, "ada@example.com") == ContactStatus.ACTIVE

    done = customer.post(path, data={"csrf_token": csrf_token(customer, path)})
    assert done.status_code == 200
    assert "You are unsubscribed" in done.get_data(as_text=True)
    assert status(db, "ada@example.com") == ContactStatus.UNSUBSCRIBED

    again = customer.post(f"{path}/again", data={"csrf_token": csrf_token(customer, path)})
    assert "You are subscribed again" in again.get_data(as_text=True)
    assert status(db, "ada@example.com") == ContactStatus.ACTIVE


def test_a_service_letters_unsubscribe_turns_off_that_kind_only_and_the_next_one_is_held(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    delivery_id, letter = send_letter(db, settings, smtp_server, kind=LetterKind.SURVEY,
                                      category=LetterCategory.SERVICE)  # fmt: skip
    path = link(letter, "/u/")
    customer = app.test_client()
    assert "satisfaction surveys" in customer.get(path).get_data(as_text=True)
    customer.post(path, data={"csrf_token": csrf_token(customer, path)})

    assert status(db, "ada@example.com") == ContactStatus.ACTIVE  # still hears the rest
    with db.unit_of_work() as s:
        assert s.scalars(select(KindOptOut.kind)).all() == ["survey"]
        contact_id = s.scalars(select(Contact.id)).one()
    staff = app.test_client()
    login(staff, Role.VIEWER)
    contact_page = staff.get(f"/contacts/{contact_id}").get_data(as_text=True)
    assert re.search(r"Letters turned off</dt><dd>survey</dd>", contact_page)
    with db.unit_of_work() as s:
        campaign = scheduling.create_campaign(
            s, "Next survey", segment_id=make_segment(s, "All").id,
            letter_version_id=make_version(s, name="Survey 2", kind=LetterKind.SURVEY,
                                           category=LetterCategory.SERVICE, html=LINKS).id,
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
    launch_now(db)
    with db.unit_of_work() as s:
        row = s.scalars(select(Delivery).where(Delivery.campaign_id == campaign.id)).one()
        assert (row.state, row.reason) == (DeliveryState.SUPPRESSED,
                                           "contact turned off survey letters")  # fmt: skip


@pytest.mark.parametrize("purpose", ["tampered", "foreign"])
def test_a_tampered_or_foreign_token_changes_nothing(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher, purpose: str
) -> None:
    delivery_id, letter = send_letter(db, settings, smtp_server, kind=LetterKind.OTHER,
                                      category=LetterCategory.MARKETING)  # fmt: skip
    tokens = Tokens.from_settings(settings)
    if purpose == "tampered":
        good = link(letter, "/u/").removeprefix("/u/")
        token = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    else:  # a valid token of another purpose (the open pixel's) for the same row
        token = tokens.sign("open", delivery_id)
    client = app.test_client(use_cookies=False)
    for path in (f"/u/{token}", f"/p/{token}", f"/a/{token}", f"/v/{token}"):
        assert client.get(path).status_code == 404
        # Refused for its token (404) or, on a form, for the missing CSRF token first (400).
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code in (400, 404)
    assert status(db, "ada@example.com") == ContactStatus.ACTIVE
    assert count(db, Event) == count(db, Acknowledgment) == count(db, KindOptOut) == 0


def test_the_preference_centre_turns_kinds_off_but_never_legal_letters(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.POLICY,
                            category=LetterCategory.LEGAL)  # fmt: skip
    with db.unit_of_work() as s:
        make_version(
            s, name="Survey", kind=LetterKind.SURVEY, category=LetterCategory.SERVICE, html=LINKS
        )
    path = link(letter, "/p/")
    customer = app.test_client()
    page = customer.get(path, headers=PHONE).get_data(as_text=True)
    assert "Policy and terms notices" in page and "must send legal notices" in page
    assert re.search(r'value="policy"\s+checked\s+disabled', page)

    # Everything unticked, the legal kind forced off by hand: it stays on.
    saved = customer.post(path, data={"csrf_token": csrf_token(customer, path),
                                      "kind": []})  # fmt: skip
    assert "Your choices are saved" in saved.get_data(as_text=True)
    assert status(db, "ada@example.com") == ContactStatus.UNSUBSCRIBED
    with db.unit_of_work() as s:
        assert s.scalars(select(KindOptOut.kind)).all() == ["survey"]

    customer.post(path, data={"csrf_token": csrf_token(customer, path), "marketing": "on",
                              "kind": ["survey"]})  # fmt: skip
    assert status(db, "ada@example.com") == ContactStatus.ACTIVE
    assert count(db, KindOptOut) == 0


def test_the_unsubscribe_page_of_a_legal_letter_says_it_cannot_be_turned_off(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.POLICY,
                            category=LetterCategory.LEGAL)  # fmt: skip
    assert letter["List-Unsubscribe"] is None
    customer = app.test_client()
    path = link(letter, "/u/")
    page = customer.get(path).get_data(as_text=True)
    assert "cannot be turned off" in page and "<form" not in page
    # A hand-made POST (a valid CSRF token from another page) changes nothing either.
    customer.post(path, data={"csrf_token": csrf_token(customer, link(letter, "/p/"))})
    assert status(db, "ada@example.com") == ContactStatus.ACTIVE


def test_pages_speak_the_contacts_language(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.OTHER,
                            category=LetterCategory.MARKETING, locale="de-AT")  # fmt: skip
    page = app.test_client().get(link(letter, "/u/")).get_data(as_text=True)
    assert '<html lang="de"' in page and "Keine Angebote und Neuigkeiten" in page


def test_view_online_shows_the_letter_exactly_as_sent(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    _, letter = send_letter(db, settings, smtp_server, kind=LetterKind.OTHER,
                            category=LetterCategory.MARKETING)  # fmt: skip
    with db.unit_of_work() as s:
        s.scalars(select(Contact)).one().first_name = "Augusta"
    answer = app.test_client().get(link(letter, "/v/"))
    html = next(p for p in letter.walk() if p.get_content_type() == "text/html")
    sent = html.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert answer.get_data(as_text=True).rstrip() == sent.rstrip()
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # none may run


def test_an_acknowledgment_keeps_version_locale_hash_and_client_once(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    delivery_id, letter = send_letter(db, settings, smtp_server, kind=LetterKind.POLICY,
                                      category=LetterCategory.LEGAL)  # fmt: skip
    path = link(letter, "/a/")
    customer = app.test_client()
    page = customer.get(path, headers=PHONE).get_data(as_text=True)
    assert "version 1 (English)" in page and "I have read and accept" in page
    assert count(db, Acknowledgment) == 0  # a GET (a scanner) accepts nothing

    assert customer.post(path, data={}).status_code == 400  # no CSRF token: refused
    token = csrf_token(customer, path)
    done = customer.post(path, data={"csrf_token": token}, headers=PHONE)
    assert "You accepted this letter on" in done.get_data(as_text=True)
    customer.post(path, data={"csrf_token": token})  # twice (a double tap): kept once
    with db.unit_of_work() as s:
        (ack,) = s.scalars(select(Acknowledgment))
        assert (ack.delivery_id, ack.locale, len(ack.text_sha256)) == (delivery_id, "en", 64)
        assert ack.user_agent == PHONE["User-Agent"] and ack.remote_addr == "127.0.0.1"
        assert s.scalar(select(func.count()).where(Event.kind == "acknowledgment")) == 1
        campaign_id = s.get_one(Delivery, delivery_id).campaign_id
    assert ack.text_sha256 in customer.get(path).get_data(as_text=True)  # a second visit

    staff = app.test_client()
    login(staff, Role.VIEWER)
    export = staff.get(f"/campaigns/{campaign_id}/acknowledgments.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    (row,) = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert (row["email"], row["version"], row["text_sha256"]) == (
        "ada@example.com", "1", ack.text_sha256)  # fmt: skip


def test_only_one_click_unsubscribe_relay_hooks_and_the_api_skip_the_csrf_check(
    app: Flask,
) -> None:
    csrf = app.extensions["csrf"]
    assert csrf._exempt_views == {"campaigns.web.public.subscriptions.unsubscribe",
                                  "campaigns.web.public.relays.ses_notification"}  # fmt: skip
    assert {bp.name for bp in csrf._exempt_blueprints} == {"api"}


def test_erasure_removes_what_a_letter_was_rendered_from_and_where_it_was_accepted(
    app: Flask, db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    delivery_id, letter = send_letter(db, settings, smtp_server, kind=LetterKind.POLICY,
                                      category=LetterCategory.LEGAL)  # fmt: skip
    customer = app.test_client()
    path = link(letter, "/a/")
    customer.post(path, data={"csrf_token": csrf_token(customer, path)}, headers=PHONE)
    with db.unit_of_work() as s:
        assert s.get_one(Delivery, delivery_id).detail["recipient"]["contact"]["first_name"]
        erasure.erase_contact(s, s.get_one(Delivery, delivery_id).contact_id)
    with db.unit_of_work() as s:
        assert s.get_one(Delivery, delivery_id).detail == {}
        (ack,) = s.scalars(select(Acknowledgment))
        assert (ack.remote_addr, ack.user_agent, len(ack.text_sha256)) == ("", "", 64)
    assert customer.get(link(letter, "/v/")).status_code == 404
    assert customer.get(path).status_code == 404
