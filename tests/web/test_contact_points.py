"""The contact page's service points and incidents: the balance and its ledger, the editors'
form (a reason each time, audited, recorded once however often it is sent), read-only for
viewers."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling
from campaigns.models import AuditEntry, PointsEntry, Role
from campaigns.service import incidents, points
from tests.factories import make_contact, make_segment, make_version
from tests.web.conftest import csrf_token, login


def contact_with_history(db: Database) -> int:
    """Ann: a goodwill grant of 3 points that expired two days ago, 3 points from the policy
    campaign, 5 bought through the API, a phone incident that used 2 (from the credit that
    expires first, the goodwill one), so its last point expired; an open e-mail incident."""
    now = utcnow()
    with db.unit_of_work() as s:
        ann = make_contact(s, "ann@example.com", first_name="Ann").id
        campaign = scheduling.create_campaign(
            s, "Policy re-statement", segment_id=make_segment(s).id,
            letter_version_id=make_version(s, name="Policy").id,
        )  # fmt: skip
        points.record(s, ann, "grant", 3, source="admin", reason="goodwill",
                      expires_on=(now - timedelta(days=2)).date(),
                      now=now - timedelta(days=40))  # fmt: skip
        points.record(s, ann, "grant", 3, source="campaign", campaign_id=campaign.id,
                      reason="policy letter: 3 points", now=now - timedelta(days=30))  # fmt: skip
        points.record(s, ann, "purchase", 5, source="api", reason="package: buy 5, get 6",
                      now=now - timedelta(days=20))  # fmt: skip
        incidents.record(s, contact_id=ann, channel="phone", chargeable=True, points_used=2,
                         summary="printer offline after the update", idempotency_key="hd-1",
                         opened_at=now - timedelta(days=10), closed_at=now - timedelta(days=9),
                         now=now - timedelta(days=10))  # fmt: skip
        incidents.record(s, contact_id=ann, channel="email", summary="how to renew?",
                         idempotency_key="hd-2", opened_at=now - timedelta(days=1))  # fmt: skip
        assert points.expire_due(s, today=now.date()) == 1
    return ann


def _send(client: FlaskClient, contact_id: int, **fields: str) -> tuple[int, str, str]:
    """Post the points form as the page drew it (its hidden key, unless given); (status,
    page after redirects, the key sent)."""
    page = f"/contacts/{contact_id}"
    html = client.get(page).get_data(as_text=True)
    key = fields.pop("form_key", "") or _form_key(html)
    answer = client.post(f"{page}/points", data={
        "csrf_token": csrf_token(client, page), "form_key": key, "kind": "grant",
        "amount": "", "reason": "", **fields,
    }, follow_redirects=True)  # fmt: skip
    return answer.status_code, answer.get_data(as_text=True), key


def _signed_in(app: Flask, db: Database, role: Role) -> tuple[FlaskClient, int, int]:
    """A client logged in with this role; Ann with her history, and her balance."""
    ann = contact_with_history(db)
    client = app.test_client()
    login(client, role)
    return client, ann, _balance(db, ann)


def _form_key(html: str) -> str:
    found = re.search(r'name="form_key" value="([^"]+)"', html)
    assert found, "no form key on the contact page"
    return found.group(1)


def _balance(db: Database, contact_id: int) -> int:
    with db.unit_of_work() as s:
        return points.balance(s, contact_id)


def test_the_page_shows_the_balance_the_ledger_newest_first_and_the_incidents(
    app: Flask, db: Database
) -> None:
    client, ann, balance = _signed_in(app, db, Role.VIEWER)
    html = client.get(f"/contacts/{ann}").get_data(as_text=True)
    assert balance == 3 + 3 + 5 - 2 - 1
    assert f'data-balance="{balance}"><strong>{balance}</strong>' in html
    ledger = html.split('class="striped points-history cards"')[1].split("</table>")[0]
    rows = re.findall(r"badge-points-(\w+)", ledger)
    assert rows == ["expire", "use", "purchase", "grant", "grant"]
    assert ">+3<" in ledger and ">-2<" in ledger and ">+5<" in ledger
    assert re.search(r'<a href="/campaigns/\d+">Policy re-statement</a>', ledger)
    assert ">API<" in ledger and ">system<" in ledger
    assert "package: buy 5, get 6" in ledger and re.search(r"incident #\d+ \(phone\)", ledger)
    incidents_table = html.split('id="incidents"')[1]
    assert "printer offline after the update" in incidents_table
    assert "badge-incident-open" in incidents_table  # the e-mail one is not closed
    # A viewer reads; the form is for editors.
    assert "Grant or adjust points" not in html


def test_an_editor_grants_points_with_a_reason_and_the_grant_is_audited(
    app: Flask, db: Database
) -> None:
    client, ann, before = _signed_in(app, db, Role.EDITOR)
    expires = (utcnow() + timedelta(days=365)).date().isoformat()
    status, html, _key = _send(client, ann, kind="grant", amount="4",
                               reason="loyal for 10 years", expires_on=expires)  # fmt: skip
    assert status == 200
    assert f"Grant of +4 points recorded; the balance is now {before + 4}." in html
    assert "loyal for 10 years" in html and "editor@example.com" in html
    with db.unit_of_work() as s:
        [entry] = points.history(s, ann, limit=1)
        assert (entry.kind, entry.amount, entry.source, str(entry.expires_on)) == (
            "grant", 4, "admin", expires)  # fmt: skip
        assert entry.user_id is not None
        [audited] = s.scalars(select(AuditEntry).where(AuditEntry.action == "points.recorded"))
        assert (audited.user_id, audited.target_type, audited.target_id) == (
            entry.user_id, "contact", ann)  # fmt: skip
        assert audited.detail["amount"] == "4" and audited.detail["reason"] == "loyal for 10 years"


def test_a_refund_without_a_reason_is_refused_naming_the_field_and_keeps_the_amount(
    app: Flask, db: Database
) -> None:
    client, ann, before = _signed_in(app, db, Role.EDITOR)
    status, html, _key = _send(client, ann, kind="refund", amount="7", reason="  ")
    assert status == 400
    assert "Nothing was saved: 1 field to correct below." in html
    assert 'id="points-reason-error" class="field-error">Say why' in html
    assert 'name="amount" step="1"' in html and 'value="7"' in html
    assert '<option value="refund" selected>' in html
    assert '<details class="dropdown-form points-form" open>' in html
    assert _balance(db, ann) == before


def test_an_adjustment_below_zero_is_refused_with_the_balance_it_would_overdraw(
    app: Flask, db: Database
) -> None:
    client, ann, before = _signed_in(app, db, Role.ADMIN)
    status, html, _key = _send(client, ann, kind="adjust", amount=str(-(before + 1)),
                               reason="typed twice by the help desk")  # fmt: skip
    assert status == 409
    assert f"Not enough points: the balance is {before}, {before + 1} asked" in html
    assert f'value="{-(before + 1)}"' in html and 'value="typed twice by the help desk"' in html
    assert _balance(db, ann) == before
    # A whole number, please; and a date for the expiry.
    status, html, _key = _send(client, ann, amount="2.5", reason="x", expires_on="soon")
    assert status == 400
    assert 'id="points-amount-error" class="field-error">Write a whole number' in html
    assert 'id="points-expires_on-error" class="field-error">Write the expiry date' in html
    # The ledger's own refusals land on their fields too: only credits expire.
    later = (utcnow() + timedelta(days=30)).date().isoformat()
    status, html, _key = _send(client, ann, kind="adjust", amount="2", reason="x", expires_on=later)
    assert status == 400
    assert 'id="points-expires_on-error" class="field-error">Only credits expire' in html
    assert _balance(db, ann) == before


def test_a_form_sent_twice_grants_once(app: Flask, db: Database) -> None:
    client, ann, before = _signed_in(app, db, Role.EDITOR)
    _status, html, key = _send(client, ann, amount="2", reason="sorry for the wait")
    assert f"the balance is now {before + 2}" in html
    status, html, _key = _send(client, ann, amount="2", reason="sorry for the wait",
                               form_key=key)  # fmt: skip
    assert status == 200
    assert f"This form was already sent: the grant of +2 points was recorded once. The balance " \
           f"is {before + 2}." in html  # fmt: skip
    assert _balance(db, ann) == before + 2
    with db.unit_of_work() as s:
        typed = select(PointsEntry).where(PointsEntry.reason == "sorry for the wait")
        assert len(s.scalars(typed).all()) == 1
        audited = select(AuditEntry).where(AuditEntry.action == "points.recorded")
        assert len(s.scalars(audited).all()) == 1
    # Each drawing of the page carries a new key: the next form is a new change.
    _status, html, other = _send(client, ann, amount="2", reason="and again")
    assert other != key and f"the balance is now {before + 4}" in html


def test_a_viewer_cannot_change_points(app: Flask, db: Database) -> None:
    client, ann, before = _signed_in(app, db, Role.VIEWER)
    page = f"/contacts/{ann}"
    answer = client.post(f"{page}/points", data={
        "csrf_token": csrf_token(client, page), "form_key": "k" * 24, "kind": "grant",
        "amount": "100", "reason": "me",
    })  # fmt: skip
    assert answer.status_code == 403
    assert _balance(db, ann) == before
