"""Hits through the production web server: bursts all recorded, scanners never counted as people."""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select
from waitress import wasyncore
from waitress.server import create_server

from campaigns.accounts import users
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.delivery.tokens import Tokens
from campaigns.embedded.services import SMTPCatcher, free_port, port_open
from campaigns.models import (
    Contact,
    ContactStatus,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Link,
    Role,
)
from campaigns.tracking import events, reports, results
from campaigns.tracking.machines import Hit
from tests.conftest import wait_until
from tests.factories import make_contact, make_segment, make_version
from tests.web.conftest import PASSWORD, create_test_app, login

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")  # fmt: skip
APPLE_MPP = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
LETTER = (
    "<p>Dear {{ contact.first_name }}</p>"
    '<p><a href="https://shop.example.com/plans">Plans</a></p>'
    '<p><a href="https://shop.example.com/renew?plan=gold">Renew</a></p>'
    '<p><a href="https://help.example.com/">Help</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


@pytest.fixture
def app(settings: Settings, db: Database) -> Flask:
    with db.unit_of_work() as s:
        users.create_user(s, "viewer@example.com", PASSWORD, role=Role.VIEWER)
    return create_test_app(settings, db)


@contextmanager
def waitress(app: Flask) -> Iterator[tuple[str, int]]:
    """Serve the app as `campaigns web` does (waitress, 8 threads) on a free port."""
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    stopping = threading.Event()

    def run() -> None:
        try:
            server.run()
        except (OSError, ValueError):
            if not stopping.is_set():  # closing the socket under its loop ends it so
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.effective_port  # type: ignore[union-attr]
    finally:
        stopping.set()
        server.task_dispatcher.shutdown()
        # Every channel too, not only the listening socket: a connection the loop had not yet
        # seen closed would otherwise be left to the garbage collector, and its warning then
        # fails whichever test happens to be running (pytest turns it into an error).
        wasyncore.close_all(server._map)
        thread.join(5)


def fetch(address: tuple[str, int], method: str, path: str, agent: str = CHROME) -> int:
    """One request on its own connection, redirects not followed; return the status."""
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request(method, path, headers={"User-Agent": agent})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def sent_letters(db: Database, count: int, *, sent_ago: timedelta) -> list[tuple[int, int]]:
    """`count` letters recorded as sent `sent_ago`; returns (delivery id, a link id) each."""
    with db.unit_of_work() as s:
        version = make_version(s, html=LETTER)
        link_id = version.links[0].id
        rows = []
        for n in range(count):
            contact = make_contact(s, f"reader{n}@example.com", first_name="Reader")
            rows.append(Delivery(contact_id=contact.id, email=contact.email,
                                 letter_version_id=version.id, state=DeliveryState.SENT,
                                 sent_at=utcnow() - sent_ago,
                                 message_id=f"<{n}@example.com>"))  # fmt: skip
        s.add_all(rows)
        s.flush()
        return [(row.id, link_id) for row in rows]


def launched(db: Database, *emails: str) -> tuple[int, list[int]]:
    """A campaign of LETTER to these contacts, launched; returns its id and its one batch."""
    with db.unit_of_work() as s:
        for email in emails:
            make_contact(s, email, first_name="Reader")
        version = make_version(s, html=LETTER)
        campaign = scheduling.create_campaign(s, "Offer", segment_id=make_segment(s).id,
                                              letter_version_id=version.id)  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
    return campaign.id, launch.batches[0]


def test_a_burst_of_pixel_and_click_hits_is_recorded_whole(
    app: Flask, db: Database, settings: Settings
) -> None:
    """RELIABILITY.md 18: every hit recorded, no "database is locked" reaches anyone."""
    letters = sent_letters(db, 40, sent_ago=timedelta(hours=1))
    tokens = Tokens.from_settings(settings)
    paths = [p for d, link in letters for p in (f"/o/{tokens.sign('open', d)}.gif",
                                                f"/c/{tokens.sign('click', d, link)}")]  # fmt: skip
    statuses: list[int] = []
    with waitress(app) as address:

        def hammer(start: int) -> None:
            for n in range(start, start + 30):
                statuses.append(fetch(address, "GET", paths[n % len(paths)]))

        threads = [threading.Thread(target=hammer, args=(t * 30,)) for t in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    events.flush(db)

    assert len(statuses) == 360
    assert sorted(set(statuses)) == [200, 302]
    with db.reading() as s:
        kinds = dict(s.execute(select(Event.kind, func.count()).group_by(Event.kind)).all())
        machines = s.scalar(select(func.count()).where(Event.is_machine.is_(True)))
    assert kinds == {"open": 180, "click": 180}
    assert machines == 0


def test_a_scanner_following_every_link_of_a_letter_at_once_counts_for_nobody(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    """RELIABILITY.md 41: GET and HEAD of every URL of a letter within a second of delivery,
    with a browser's User-Agent: nobody unsubscribed, no open or click of a person."""
    app = create_test_app(settings, db)
    campaign_id, batch = launched(db, "jane@example.com")
    mailer = SMTPMailer(smtp_server.url)
    assert sending.deliver_batch(db, batch, mailer=mailer, settings=settings).sent == 1
    mailer.close()
    (received,) = smtp_server.messages
    letter = BytesParser(policy=default_policy).parsebytes(received.data)
    html = letter.get_body(("html",)).get_content()  # type: ignore[union-attr]
    unsubscribe = str(letter["List-Unsubscribe"]).strip("<>")
    urls = {*re.findall(r'(?:href|src)="(http[^"]+)"', html), unsubscribe}
    ours = sorted({urlsplit(u).path for u in urls if u.startswith(settings.public_url)})
    assert any(p.startswith("/o/") for p in ours) and any(p.startswith("/u/") for p in ours)
    assert sum(p.startswith("/c/") for p in ours) == 3

    with waitress(app) as address:
        answers = {(method, path): fetch(address, method, path)
                   for path in ours for method in ("GET", "HEAD")}  # fmt: skip
    events.flush(db)

    assert all(status in (200, 302) for status in answers.values()), answers
    with db.reading() as s:
        status = s.scalars(select(Contact.status)).one()
        recorded = s.execute(select(Event.kind, Event.is_machine, Event.detail)).all()
        (funnel,) = reports.campaign_funnels(s, campaign_id=campaign_id)
    assert status == ContactStatus.ACTIVE
    assert {kind for kind, _, _ in recorded} == {EventKind.OPEN, EventKind.CLICK}
    assert len(recorded) == 2 * 4  # the pixel and three links, each GET and HEAD
    assert all(machine and detail["machine"] for _, machine, detail in recorded)
    assert (funnel.opened, funnel.clicked) == (0, 0)
    assert (funnel.opened_machine, funnel.clicked_machine) == (1, 1)


def test_a_scanners_renewal_link_hits_are_flagged_and_a_persons_later_one_is_not(
    app: Flask, db: Database, settings: Settings
) -> None:
    with db.unit_of_work() as s:
        contact = make_contact(s, "ada@example.com", first_name="Ada")
        version = make_version(s, html=LETTER)
        contract_id = contact.contracts[0].id
        delivery = Delivery(contact_id=contact.id, contract_id=contract_id, term=1,
                            email=contact.email, letter_version_id=version.id,
                            state=DeliveryState.SENT, sent_at=utcnow(),
                            message_id="<r@x>")  # fmt: skip
        s.add(delivery)
        s.flush()
    path = f"/r/{Tokens.from_settings(settings).sign('renewal', delivery.id, contract_id, 0)}"
    with waitress(app) as address:
        assert fetch(address, "HEAD", path) == 302
        assert fetch(address, "GET", path) == 302  # within seconds of delivery
        events.flush(db)  # (a hit is judged when it is written)
        with db.unit_of_work() as s:
            s.get_one(Delivery, delivery.id).sent_at = utcnow() - timedelta(hours=2)
        assert fetch(address, "GET", path) == 302
    events.flush(db)
    with db.reading() as s:
        reasons = [e.detail.get("machine") for e in s.scalars(select(Event).order_by(Event.id))]
    assert reasons == ["head-request", "soon-after-delivery", None]


def test_two_links_clicked_within_a_second_flag_both_clicks(db: Database) -> None:
    ((delivery_id, _),) = sent_letters(db, 1, sent_ago=timedelta(hours=1))
    with db.reading() as s:
        links = select(Link.id).join(Delivery, Delivery.letter_version_id == Link.version_id)
        first, second, third = s.scalars(links.order_by(Link.position)).all()[:3]
    person = Hit("GET", "203.0.113.7", CHROME)
    start = utcnow()
    events.record_click(db, delivery_id, first, hit=person, now=start)
    events.flush(db)  # the first is written, as a person's, before the second comes
    with db.reading() as s:
        assert s.scalars(select(Event.is_machine)).all() == [False]
    events.record_click(db, delivery_id, second, hit=person, now=start + timedelta(seconds=0.6))
    events.record_click(db, delivery_id, third, hit=person, now=start + timedelta(seconds=9))
    events.flush(db)
    with db.reading() as s:
        flags = [(e.link_id, e.is_machine, e.detail.get("machine"))
                 for e in s.scalars(select(Event).order_by(Event.id))]  # fmt: skip
    assert flags == [(first, True, "links-together"), (second, True, "links-together"),
                     (third, False, None)]  # fmt: skip


def test_the_clients_address_comes_from_the_proxy_header_only_when_configured(
    db: Database, settings: Settings
) -> None:
    ((delivery_id, _),) = sent_letters(db, 1, sent_ago=timedelta(hours=1))
    pixel = f"/o/{Tokens.from_settings(settings).sign('open', delivery_id)}.gif"
    headers = {"User-Agent": APPLE_MPP, "X-Forwarded-For": "198.51.100.1, 17.58.101.7"}
    for header in ("", "X-Forwarded-For"):
        app = create_test_app(dataclasses.replace(settings, trusted_proxy_header=header), db)
        assert app.test_client().get(pixel, headers=headers).status_code == 200
    events.flush(db)
    with db.reading() as s:
        reasons = [e.detail.get("machine") for e in s.scalars(select(Event).order_by(Event.id))]
    # Not trusted: the peer (127.0.0.1) is no proxy. Trusted: the address the proxy saw.
    assert reasons == [None, "apple-mpp"]


def test_reports_show_people_and_machines_side_by_side(
    app: Flask, db: Database, settings: Settings
) -> None:
    campaign_id, batch = launched(db, "jane@example.com", "joe@example.com")
    with db.unit_of_work() as s:
        jane, joe = sending.claim(s, batch, now=utcnow())
        for delivery_id in (jane, joe):
            sending.finish(s, delivery_id, DeliveryState.SENT, message_id=f"<{delivery_id}@x>")
            s.get_one(Delivery, delivery_id).sent_at = utcnow() - timedelta(hours=1)
    apple = Hit("GET", "17.58.101.7", APPLE_MPP)
    person = Hit("GET", "203.0.113.7", CHROME)
    events.record_open(db, jane, hit=apple)
    events.record_open(db, jane, hit=person)
    events.record_open(db, joe, hit=apple)
    events.flush(db)
    with db.reading() as s:
        (funnel,) = reports.campaign_funnels(s, campaign_id=campaign_id)
    assert (funnel.sent, funnel.opened, funnel.opened_machine) == (2, 1, 2)
    assert (funnel.clicked, funnel.clicked_machine) == (0, 0)

    with db.unit_of_work() as s:
        results.refresh(s, window=timedelta(days=30))
    client = app.test_client()
    login(client, "viewer")
    page = client.get("/reports").get_data(as_text=True)
    row = re.sub(r"\s+", " ", page[page.index("<tbody>") :])
    assert "Machine opens" in page and "Machine clicks" in page
    # Opened (people), then machine opens: one of two letters, and both.
    assert re.search(r'<td class="num">1 <small>50\.0 %</small></td> '
                     r'<td class="num">2 <small>100\.0 %</small></td>', row), row  # fmt: skip


def test_a_pixel_of_a_letter_never_delivered_records_nothing(
    app: Flask, db: Database, settings: Settings
) -> None:
    ((delivery_id, _),) = sent_letters(db, 1, sent_ago=timedelta(hours=1))
    with db.unit_of_work() as s:
        s.get_one(Delivery, delivery_id).state = DeliveryState.FAILED
    pixel = f"/o/{Tokens.from_settings(settings).sign('open', delivery_id)}.gif"
    assert app.test_client().get(pixel, headers={"User-Agent": CHROME}).status_code == 200
    events.flush(db)
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_campaigns_web_stopped_with_sigterm_writes_the_hits_it_answered(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    letters = sent_letters(db, 30, sent_ago=timedelta(hours=1))
    tokens = Tokens.from_settings(settings)
    port = free_port()
    env = dict(os.environ, DATABASE_URL=settings.database_url, SECRET_KEY=settings.secret_key,
               CAMPAIGNS_DATA_DIR=str(tmp_path), WEB_HOST="127.0.0.1",
               WEB_PORT=str(port))  # fmt: skip
    web = subprocess.Popen([sys.executable, "-m", "campaigns.cli", "web"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert wait_until(lambda: port_open("127.0.0.1", port), what="campaigns web")
        for delivery_id, _link in letters:
            path = f"/o/{tokens.sign('open', delivery_id)}.gif"
            assert fetch(("127.0.0.1", port), "GET", path) == 200
        web.send_signal(signal.SIGTERM)  # at once: the last hits are still being gathered
        assert web.wait(timeout=30) == 0
    finally:
        web.kill()
    with db.unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 30


def test_clicks_lead_only_to_stored_web_links_and_count_only_for_their_own_letter(
    app: Flask, db: Database, settings: Settings
) -> None:
    """RELIABILITY.md 26: no open redirect, no `javascript:` or `data:`, nothing foreign."""
    (mine, theirs) = sent_letters(db, 2, sent_ago=timedelta(hours=1))
    with db.unit_of_work() as s:
        version_id = s.get_one(Delivery, mine[0]).letter_version_id
        unsafe = ("javascript:alert(1)", "data:text/html,<b>x</b>")
        bad = [Link(version_id=version_id, position=90 + n, url=url)
               for n, url in enumerate(unsafe)]  # fmt: skip
        s.add_all(bad)
        s.flush()
        bad_ids = [link.id for link in bad]
        other = make_version(s, name="Another letter", html=LETTER)
        foreign_link = other.links[0].id
        s.get_one(Delivery, theirs[0]).state = DeliveryState.FAILED
    tokens = Tokens.from_settings(settings)
    client = app.test_client()

    def click(delivery_id: int, link_id: int) -> tuple[int, str]:
        answer = client.get(f"/c/{tokens.sign('click', delivery_id, link_id)}",
                            headers={"User-Agent": CHROME})  # fmt: skip
        return answer.status_code, answer.headers.get("Location", "")

    for link_id in (*bad_ids, 999_999):
        assert click(mine[0], link_id) == (404, "")
    # Tokens we never sign (a letter never delivered; another letter's link) still lead only
    # to a link we stored, and count for nobody.
    assert click(theirs[0], theirs[1])[1].startswith("https://")
    assert click(mine[0], foreign_link)[1].startswith("https://")
    assert click(mine[0], mine[1])[0] == 302  # the one real click
    events.flush(db)
    with db.reading() as s:
        assert [(e.delivery_id, e.link_id) for e in s.scalars(select(Event))] == [mine]
