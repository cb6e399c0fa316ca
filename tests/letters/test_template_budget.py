"""A template can no longer freeze the product: time, size and depth budgets on every render."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from campaigns.accounts import users
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded.services import SMTPCatcher
from campaigns.errors import TemplateError
from campaigns.letters import authoring, rendering, sandbox
from campaigns.models import Delivery, DeliveryState, LetterCategory, LetterKind, Role
from tests.factories import make_contact, make_segment, make_unchecked_version, make_version
from tests.web.conftest import PASSWORD, create_test_app, login

NESTED_LOOPS = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
REPLACE_CHAIN = "{{ ('x' * 1000)" + "|replace('x', 'xxxxxxxxxx')" * 6 + " }}"
RECURSIVE_MACRO = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"

# Each bomb, and the words of the error its author sees.
BOMBS = pytest.mark.parametrize(
    ("bomb", "reason"),
    [
        (NESTED_LOOPS, "takes longer than 2 seconds"),
        (REPLACE_CHAIN, "|replace would be longer than 2,000,000 characters"),
        (RECURSIVE_MACRO, "a macro, loop or block calls itself too deeply"),
    ],
    ids=["nested-loops", "replace-chain", "recursive-macro"],
)
BUDGET = rendering.RENDER_SECONDS + 2  # the budget, and room for a slow test machine


@pytest.fixture
def viewer(settings: Settings, db: Database) -> FlaskClient:
    """A client of the admin, logged in as a viewer."""
    app = create_test_app(settings, db)
    with db.unit_of_work() as s:
        users.create_user(s, f"{Role.VIEWER}@example.com", PASSWORD, role=Role.VIEWER)
    client = app.test_client()
    login(client, Role.VIEWER)
    return client


T = TypeVar("T")
Render = Callable[[], object]


def _timed(action: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    return action(), time.monotonic() - started


@BOMBS
def test_a_bomb_is_refused_within_the_budget_when_a_version_is_saved(
    db: Database, bomb: str, reason: str
) -> None:
    with db.unit_of_work() as s:
        letter_id = authoring.create_letter(
            s, "Bomb", kind=LetterKind.OTHER, category=LetterCategory.SERVICE
        ).id
    started = time.monotonic()
    with pytest.raises(TemplateError, match=f"^html: .*{reason}") as refused:
        with db.unit_of_work() as s:
            authoring.add_version(s, letter_id, subject="Hello", html=f"<p>{bomb}</p>")
    assert time.monotonic() - started < BUDGET
    assert refused.value.field == "html"


@BOMBS
def test_the_preview_of_a_stored_bomb_answers_400_with_the_reason_within_the_budget(
    db: Database, viewer: FlaskClient, bomb: str, reason: str
) -> None:
    with db.unit_of_work() as s:
        version_id = make_unchecked_version(s, html=f"<p>{bomb}</p>").id
    answer, elapsed = _timed(lambda: viewer.get(f"/letters/versions/{version_id}/preview"))
    assert elapsed < BUDGET
    assert answer.status_code == 400
    assert reason in answer.get_data(as_text=True)


def _campaign(db: Database, version_id: int, name: str) -> int:
    with db.unit_of_work() as s:
        campaign = scheduling.create_campaign(
            s, name, segment_id=make_segment(s, f"Everyone for {name}").id,
            letter_version_id=version_id,
        )  # fmt: skip
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        return campaign.id


@BOMBS
def test_a_bomb_at_send_time_fails_only_its_own_rows_and_the_batch_goes_on(
    db: Database, settings: Settings, smtp_server: SMTPCatcher, bomb: str, reason: str
) -> None:
    with db.unit_of_work() as s:
        for name in ("ann", "bob"):
            make_contact(s, f"{name}@example.com", first_name=name)
        good_id = make_version(s).id
        bomb_id = make_unchecked_version(s, html=f"<p>{bomb}</p>").id
    good, bad = _campaign(db, good_id, "Offer"), _campaign(db, bomb_id, "Bomb")
    with db.unit_of_work() as s:
        launches = scheduling.launch_due(s, now=utcnow())
    batch = sorted(i for launch in launches for batch in launch.batches for i in batch)
    mailer = SMTPMailer(smtp_server.url)
    result, elapsed = _timed(
        lambda: sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    )
    mailer.close()

    assert elapsed < 2 * BUDGET  # one budget per bomb row at most
    assert (result.sent, result.failed) == (2, 2)
    with db.unit_of_work() as s:
        rows = list(s.scalars(select(Delivery)))
    assert {(r.campaign_id, r.state) for r in rows} == {
        (good, DeliveryState.SENT), (bad, DeliveryState.FAILED)
    }  # fmt: skip
    assert all(reason in r.reason for r in rows if r.campaign_id == bad)
    assert sorted(m.recipients[0] for m in smtp_server.messages) == [
        "ann@example.com", "bob@example.com",
    ]  # fmt: skip


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "campaigns.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def test_a_broken_contact_row_fails_only_its_own_letter(
    sqlite_db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    db = sqlite_db  # only SQLite lets a row hold what its column type cannot read back
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com", first_name="Ann")
        broken = make_contact(s, "bob@example.com", first_name="Bob").id
        version_id = make_version(s).id
    _campaign(db, version_id, "Offer")
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())
        s.execute(text("UPDATE contacts SET attributes = 'not json' WHERE id = :id"),
                  {"id": broken})  # fmt: skip
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
    mailer.close()

    assert (result.sent, result.failed) == (1, 1)
    with db.unit_of_work() as s:
        rows = {r.email: r for r in s.scalars(select(Delivery))}
    assert rows["ann@example.com"].state == DeliveryState.SENT
    assert rows["bob@example.com"].state == DeliveryState.FAILED
    assert rows["bob@example.com"].reason.startswith("the letter could not be prepared: ")
    assert [m.recipients for m in smtp_server.messages] == [["ann@example.com"]]


def _render_in_preview(db: Database, viewer: FlaskClient, settings: Settings) -> Render:
    with db.unit_of_work() as s:
        version_id = make_unchecked_version(s, html=NESTED_LOOPS).id
    return lambda: viewer.get(f"/letters/versions/{version_id}/preview")


def _render_when_saving(db: Database, viewer: FlaskClient, settings: Settings) -> Render:
    with db.unit_of_work() as s:
        letter_id = authoring.create_letter(
            s, "Bomb", kind=LetterKind.OTHER, category=LetterCategory.SERVICE
        ).id

    def save() -> None:
        with pytest.raises(TemplateError), db.unit_of_work() as s:
            authoring.add_version(s, letter_id, subject="Hello", html=NESTED_LOOPS)

    return save


def _render_when_sending(db: Database, viewer: FlaskClient, settings: Settings) -> Render:
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com", first_name="Ann")
        version_id = make_unchecked_version(s, html=NESTED_LOOPS).id
    _campaign(db, version_id, "Bomb")
    with db.unit_of_work() as s:
        (launch,) = scheduling.launch_due(s, now=utcnow())

    def send() -> None:
        mailer = SMTPMailer(str(settings.smtp_url))
        sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
        mailer.close()

    return send


@pytest.mark.parametrize(
    "start", [_render_in_preview, _render_when_saving, _render_when_sending],
    ids=["preview", "save", "send"],
)  # fmt: skip
def test_another_writer_commits_while_a_bomb_renders(
    db: Database,
    viewer: FlaskClient,
    settings: Settings,
    start: Callable[..., Render],
) -> None:
    render = threading.Thread(target=start(db, viewer, settings))
    render.start()
    time.sleep(0.5)  # well into the render, which lasts the whole budget
    started = time.monotonic()
    with db.unit_of_work() as s:
        make_contact(s, "writer@example.com")
    elapsed = time.monotonic() - started
    still_rendering = render.is_alive()
    render.join(timeout=2 * BUDGET)
    assert elapsed < 1.0, f"the writer waited {elapsed:.1f}s for the render"
    assert still_rendering
    assert not render.is_alive()
    with db.unit_of_work() as s:
        assert (
            s.scalar(select(Delivery.state).where(Delivery.state == DeliveryState.SENDING)) is None
        )


@pytest.mark.parametrize(
    "payload",
    [
        "{% set s = 'x' * 50000 %}" + "{% set s = s ~ s %}" * 30,
        "{% set s = ['x' * 50000] %}" + "{% set s = [s, s] %}" * 30 + "{{ s }}",
        "{% set ns = namespace(s='x' * 90000) %}"
        "{% for i in range(99) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% macro m() %}{% for i in range(99999) %}{{ 'x' * 90000 }}{% endfor %}{% endmacro %}"
        "{{ m()|length }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ 'x'|center(999999999) }}",
        "{{ 'x'.ljust(999999999) }}",
        "{{ ('\n' * 90000)|indent(1000, true, true) }}",
        "{% set s = 'x' * 90000 %}{{ (range(99999)|list)|join(s) }}",
        "{{ [1]|batch(999999999, 'x')|list }}",
        "{{ [[1]] * 1000|sum(start=[]) }}",
        "{{ ((10 ** 60) ** 60) ** 60 }}",
        "{{ (1).to_bytes(999999999, 'big') }}",
        "{% block a %}{{ self.a() }}{% endblock %}",
        "{% for i in [1] recursive %}{{ loop([1]) }}{% endfor %}",
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    ],
)
def test_templates_that_grow_values_or_nest_without_bound_are_stopped_at_once(
    payload: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match="^html: "):
        rendering.render_string(sandbox.HTML_ENV, payload, authoring.sample_context(), field="html")
    assert time.monotonic() - started < 1.0


def test_a_deadline_that_passes_as_a_render_ends_never_fires_afterwards_nor_hangs() -> None:
    # The watchdog may fire just as a render returns: the pending exception must be
    # cleared, not delivered later in code that has nothing to do with the letter, and
    # no lock may be left taken. Short switch intervals make every interleaving likely.
    loop = "{% for i in range(3000) %}{{ i }}{% endfor %}"
    outcomes: list[str] = []

    def renders() -> None:
        for n in range(500):
            try:
                rendering.render_string(
                    sandbox.TEXT_ENV, loop, {}, field="text", seconds=0.0003 * (n % 10)
                )
                outcomes.append("rendered")
            except TemplateError:
                outcomes.append("stopped")
            try:
                sum(i for i in range(3000))  # bytecode where a stray exception would surface
            except BaseException as exc:  # noqa: B036 - exactly what must not happen
                outcomes.append(f"leaked {type(exc).__name__}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=renders, daemon=True) for _ in range(4)]
        for thread in threads:
            thread.start()
        give_up = time.monotonic() + 60
        for thread in threads:
            thread.join(timeout=max(0.0, give_up - time.monotonic()))
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads), "a render hung"
    assert set(outcomes) == {"rendered", "stopped"}
    assert len(outcomes) == 4 * 500


def test_ordinary_letters_still_render_with_macros_loops_and_formatting() -> None:
    source = (
        "{% macro item(x) %}<li>{{ x }}</li>{% endmacro %}"
        "<p>{{ contact.first_name|upper }} {{ '%s-%d' % ('a', 3) }} {{ '{} {}'.format(1, 2) }}"
        " {{ [1, 2]|join(', ') }} {{ (contact.first_name ~ '!')|replace('!', '?') }}</p>"
        "{% set ns = namespace(total=0) %}{% for i in range(3) %}{{ item(i) }}"
        "{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}"
    )
    out = rendering.render_string(sandbox.HTML_ENV, source, authoring.sample_context(),
                                  field="html")  # fmt: skip
    assert out == "<p>JANE a-3 1 2 1, 2 Jane?</p><li>0</li><li>1</li><li>2</li>3"
