"""The customer-facing endpoints count customers, not the staff looking at a letter."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.tokens import Tokens
from campaigns.models import DeliveryState, Event, Role
from tests.factories import make_contact, make_segment, make_version
from tests.web.conftest import login

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"}


def _sent_delivery(db: Database) -> tuple[int, int]:
    """A letter recorded as sent; returns (delivery id, id of its first stored link)."""
    with db.unit_of_work() as s:
        make_contact(s, "jane@example.com", first_name="Jane")
        version = make_version(s)
        campaign = scheduling.create_campaign(
            s, "Offer", segment_id=make_segment(s).id, letter_version_id=version.id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        link_id = version.links[0].id
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
        (delivery_id,) = sending.claim(s, launch.batches[0], now=utcnow())
        sending.finish(s, delivery_id, DeliveryState.SENT, message_id="<1@example.com>")
    return delivery_id, link_id


def _events(db: Database) -> list[tuple[str, bool]]:
    with db.unit_of_work() as s:
        return [(e.kind, e.is_machine) for e in s.scalars(select(Event).order_by(Event.id))]


def test_opens_and_clicks_from_an_admin_session_are_not_counted(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id, link_id = _sent_delivery(db)
    tokens = Tokens.from_settings(settings)
    pixel = f"/o/{tokens.sign('open', delivery_id)}.gif"
    click = f"/c/{tokens.sign('click', delivery_id, link_id)}"

    staff = app.test_client()
    login(staff, Role.VIEWER)
    assert staff.get(pixel, headers=BROWSER).status_code == 200
    answer = staff.get(click, headers=BROWSER)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://shop.example.com/renew?plan=gold&src=mail"
    assert _events(db) == []

    customer = app.test_client()
    assert customer.get(pixel, headers=BROWSER).status_code == 200
    assert customer.get(click, headers=BROWSER).status_code == 302
    assert _events(db) == [("open", False), ("click", False)]
