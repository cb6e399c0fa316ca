"""The customer-facing endpoints count customers, not the staff looking at a letter."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.tokens import Tokens
from campaigns.errors import TokenInvalid
from campaigns.models import Delivery, DeliveryState, Event, LetterCategory, LetterKind, Role
from campaigns.tracking import events
from tests.factories import make_contact, make_segment, make_version
from tests.web.conftest import login

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"}
AN_HOUR = timedelta(hours=1)


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
        # Read a while ago: a hit within seconds of delivery is a gateway's, not a person's.
        s.get_one(Delivery, delivery_id).sent_at = utcnow() - AN_HOUR
    return delivery_id, link_id


def _events(db: Database) -> list[tuple[str, bool]]:
    events.flush(db)  # hits are written a moment after they are answered
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


def _renewal_delivery(db: Database) -> tuple[int, int]:
    """A renewal letter about a contract, recorded as sent; returns (delivery id, contract id).

    The row is written as an automation step writes it (campaign launches do not put the
    contract in their rows yet).
    """
    with db.unit_of_work() as s:
        contact = make_contact(s, "ada@example.com", first_name="Ada")
        version = make_version(
            s, name="Renewal", kind=LetterKind.RENEWAL, category=LetterCategory.SERVICE,
            html='<p>Dear {{ contact.first_name }}</p><a href="{{ renewal_url }}">Renew</a>',
        )  # fmt: skip
        contract_id = contact.contracts[0].id
        delivery = Delivery(
            contact_id=contact.id, contract_id=contract_id, term=1, email=contact.email,
            letter_version_id=version.id, state=DeliveryState.SENT, sent_at=utcnow() - AN_HOUR,
            message_id="<r1@example.com>",
        )  # fmt: skip
        s.add(delivery)
        s.flush()
        return delivery.id, contract_id


def _renewal_events(db: Database) -> list[tuple[str, int | None, dict[str, object]]]:
    events.flush(db)
    with db.unit_of_work() as s:
        return [(e.kind, e.delivery_id, e.detail) for e in s.scalars(select(Event))]


def test_a_renewal_link_records_the_click_and_leads_to_the_contracts_renewal_page(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id, contract_id = _renewal_delivery(db)
    token = Tokens.from_settings(settings).sign("renewal", delivery_id, contract_id, 0)

    answer = app.test_client().get(f"/r/{token}", headers=BROWSER)

    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("https://shop.example.com/renew/")
    assert "discount" not in answer.headers["Location"]
    assert _renewal_events(db) == [("renewal_click", delivery_id, {"contract_id": contract_id})]


def test_a_renewal_link_with_a_discount_passes_the_code_on_and_records_it(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id, contract_id = _renewal_delivery(db)
    token = Tokens.from_settings(settings).sign("renewal", delivery_id, contract_id, 10)

    answer = app.test_client().get(f"/r/{token}", headers=BROWSER)

    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("?discount=LOYALTY")
    offered = {"contract_id": contract_id, "discount_percent": 10, "discount_code": "LOYALTY"}
    assert _renewal_events(db) == [("renewal_click", delivery_id, offered)]


def test_forged_and_foreign_renewal_tokens_are_refused_and_nothing_is_recorded(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id, contract_id = _renewal_delivery(db)
    with db.unit_of_work() as s:
        other = make_contact(s, "eve@example.com", first_name="Eve")
        other_contract = other.contracts[0].id
    tokens = Tokens.from_settings(settings)
    client = app.test_client()

    forged = tokens.sign("renewal", delivery_id, contract_id, 0)[:-3] + "abc"
    someone_elses = tokens.sign("renewal", delivery_id, other_contract, 0)
    click_token = tokens.sign("click", delivery_id, contract_id)  # another purpose
    other_key = Tokens("another-secret-key-0123456789").sign("renewal", delivery_id, contract_id, 0)
    for token in (forged, someone_elses, click_token, other_key, "nonsense"):
        answer = client.get(f"/r/{token}", headers=BROWSER)
        assert 400 <= answer.status_code < 500, token
    assert _renewal_events(db) == []


def test_a_renewal_link_followed_by_staff_is_not_counted(
    app: Flask, db: Database, settings: Settings
) -> None:
    delivery_id, contract_id = _renewal_delivery(db)
    token = Tokens.from_settings(settings).sign("renewal", delivery_id, contract_id, 0)
    staff = app.test_client()
    login(staff, Role.VIEWER)

    assert staff.get(f"/r/{token}", headers=BROWSER).status_code == 302
    assert _renewal_events(db) == []


def test_signed_links_are_the_tokens_itsdangerous_makes_and_verifies() -> None:
    """Tokens signs on a fast path; every id list a letter carries comes out byte for byte."""
    from itsdangerous import URLSafeSerializer

    tokens = Tokens("a-signing-key-0123456789", old_keys=("a-retired-key-0123456789",))
    cases = [(0,), (7,), (1, 2), (123456, 789012, 10), (111111, 111111), (10**12, 10**12, 0),
             tuple(range(30)), (2**62,)]  # fmt: skip
    for ids in cases:
        for purpose in Tokens.PURPOSES:
            reference = URLSafeSerializer(["a-signing-key-0123456789"], salt=f"campaigns.{purpose}")
            token = tokens.sign(purpose, *ids)
            assert token == reference.dumps(list(ids)), (purpose, ids)
            assert tokens.verify(purpose, token, arity=len(ids)) == ids


def test_tokens_are_checked_on_the_fast_path_exactly_as_itsdangerous_checks_them() -> None:
    """A retired key's token passes, a tampered or foreign one never, compressed ones too."""
    from itsdangerous import URLSafeSerializer

    tokens = Tokens("a-signing-key-0123456789", old_keys=("a-retired-key-0123456789",))
    retired = URLSafeSerializer(["a-retired-key-0123456789"], salt="campaigns.click")
    assert tokens.verify("click", retired.dumps([5, 6]), arity=2) == (5, 6)
    compressed = tokens.sign("open", *range(30))
    assert compressed.startswith(".")  # itsdangerous compressed it: its own path checks it
    assert tokens.verify("open", compressed, arity=30) == tuple(range(30))
    good = tokens.sign("click", 5, 6)
    body, mac = good.split(".")
    foreign = URLSafeSerializer(["somebody-else-0123456789"], salt="campaigns.click")
    flipped = "A" if mac[3] != "A" else "B"  # (the last character holds padding bits too)
    for bad in (f"{body}.{mac[:3]}{flipped}{mac[4:]}",
                f"{body[:-1]}Q.{mac}", foreign.dumps([5, 6]), tokens.sign("open", 5, 6),
                f"{body}.", f".{mac}", "", ".", "not a token"):  # fmt: skip
        with pytest.raises(TokenInvalid):
            tokens.verify("click", bad, arity=2)
