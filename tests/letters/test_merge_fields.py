"""A letter never goes out with a hole: missing merge fields are errors, named, everywhere."""

from __future__ import annotations

import html
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
from sqlalchemy import select

from campaigns.accounts import users
from campaigns.audience import segments
from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import scheduling, sending
from campaigns.delivery.mailer import SMTPMailer
from campaigns.embedded import demo
from campaigns.embedded.services import SMTPCatcher
from campaigns.errors import TemplateError, ValidationError
from campaigns.letters import authoring, rendering, sandbox
from campaigns.models import Delivery, DeliveryState, LetterCategory, SegmentTarget
from campaigns.models.letters import LetterNeeds
from tests.factories import make_contact, make_segment, make_unchecked_version, make_version
from tests.web.conftest import PASSWORD, create_test_app, csrf_token, login

SERVICE = LetterCategory.SERVICE
GUARDED = "<p>{% if contract %}{{ contract.product }}, {{ contract.plan }}{% endif %}</p>"


def _render(source: str, *, contract: bool = True) -> str:
    context = authoring.sample_context(contract=contract)
    return rendering.render_string(sandbox.HTML_ENV, source, context, field="html")


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("<p>Dear {{ contact.nickname }}</p>", "{{ contact.nickname }} is not a merge field"),
        ("<p>{{ discount }}</p>", "{{ discount }} is not a merge field"),
        ("<p>{{ contact.first_name ~ contact.nickname }}</p>", "{{ contact.nickname }}"),
        ("{% for x in contact.nickname %}{{ x }}{% endfor %}", "{{ contact.nickname }}"),
    ],
)
def test_an_undefined_merge_field_is_an_error_that_names_it_never_a_blank(
    source: str, named: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        _render(source)
    assert named in str(caught.value)


def test_the_expiry_sentence_fails_without_a_contract_instead_of_going_out_with_holes() -> None:
    expiry = "Your {{ contract.product }} cover ends on {{ contract.ends_on }}."
    assert _render(expiry) == "Your Premium Support cover ends on 2027-01-31."
    with pytest.raises(TemplateError, match=r"\{\{ contract \}\} is missing: .* has none"):
        _render(expiry, contract=False)
    with pytest.raises(TemplateError, match=r"\{\{ renewal_url \}\} is missing"):
        _render('<a href="{{ renewal_url }}">Renew</a>', contract=False)


def test_tests_and_defaults_are_how_a_letter_does_without_a_field() -> None:
    guarded = (
        "{% if contract %}Your {{ contract.product }} cover.{% else %}Thank you.{% endif %}"
        "{{ ' Plan: ' ~ contract.plan if contract is defined }}"
        " {{ contract.product|default('our service') }}"
        "{% if contact.attributes.vip %} VIP{% endif %}"
    )
    assert _render(guarded) == "Your Premium Support cover. Plan: Annual Premium Support VIP"
    assert _render(guarded, contract=False) == "Thank you. our service VIP"


def test_a_version_declares_whether_it_needs_a_contract(db: Database) -> None:
    with db.unit_of_work() as s:
        needing = make_version(s, name="Expiry", category=SERVICE,
                               html="<p>Ends {{ contract.ends_on }}</p>")  # fmt: skip
        in_subject = make_version(s, name="Subject", category=SERVICE, html="<p>Hi</p>",
                                  subject="Your {{ contract.product }}")  # fmt: skip
        guarded = make_version(s, name="Guarded", category=SERVICE, html=GUARDED)
        contact_only = make_version(s, name="Hello", category=SERVICE,
                                    html="<p>Dear {{ contact.first_name }}</p>")  # fmt: skip
        assert needing.needs == in_subject.needs == LetterNeeds.CONTRACT
        assert guarded.needs == contact_only.needs == LetterNeeds.CONTACT
        assert authoring.contract_uses(needing) == ["contract.ends_on"]


def test_saving_names_an_unknown_merge_field_and_a_guard_that_does_not_hold(
    db: Database,
) -> None:
    with db.unit_of_work() as s, pytest.raises(ValidationError, match=r"\{\{ contrat \}\}"):
        make_version(s, category=SERVICE, html="<p>{% if contrat %}x{% endif %}</p>")
    # The test guards the body, but the else branch prints the contract it does not have.
    holey = "{% if contract %}ok{% else %}{{ contract.product }}{% endif %}"
    with db.unit_of_work() as s, pytest.raises(TemplateError, match=r"\{\{ contract \}\}"):
        make_version(s, name="Holey", category=SERVICE, html=f"<p>{holey}</p>")


def test_a_letter_needing_a_contract_cannot_be_scheduled_to_a_contacts_segment(
    db: Database,
) -> None:
    with db.unit_of_work() as s:
        version_id = make_version(s, name="Expiry", category=SERVICE,
                                  html="<p>Ends {{ contract.ends_on }}</p>").id  # fmt: skip
        contacts_id = make_segment(s, "Everyone").id
        contracts_id = segments.create_segment(
            s, "Ending soon", target=SegmentTarget.CONTRACTS,
            rules={"match": "all", "conditions": []},
        ).id  # fmt: skip
    with db.unit_of_work() as s, pytest.raises(ValidationError) as refused:
        scheduling.create_campaign(s, "Expiry", segment_id=contacts_id,
                                   letter_version_id=version_id)  # fmt: skip
    message = str(refused.value)
    assert "needs a contract" in message and "{{ contract.ends_on }}" in message
    assert "'Everyone' targets contacts" in message and "segment that targets contracts" in message
    with db.unit_of_work() as s:
        scheduling.create_campaign(s, "Expiry", segment_id=contracts_id,
                                   letter_version_id=version_id)  # fmt: skip


def test_at_send_time_a_missing_field_fails_that_row_with_the_field_and_the_batch_goes_on(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com", first_name="Ann", attributes={"tier": "gold"})
        make_contact(s, "bob@example.com", first_name="Bob")
        make_contact(s, "cy@example.com")  # no first name
        version = make_version(s, name="Tiers", category=SERVICE,
                               html="<p>Dear {{ contact.first_name }}, your tier is "
                                    "{{ contact.attributes.tier }}.</p>")  # fmt: skip
        campaign = scheduling.create_campaign(
            s, "Tiers", segment_id=make_segment(s).id, letter_version_id=version.id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        (launch,) = scheduling.launch_due(s, now=utcnow())
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
    mailer.close()

    assert (result.sent, result.failed) == (1, 2)
    with db.unit_of_work() as s:
        rows = {d.email: d for d in s.scalars(select(Delivery))}
    assert rows["ann@example.com"].state == DeliveryState.SENT
    assert rows["bob@example.com"].state == DeliveryState.FAILED
    assert (
        "{{ contact.attributes.tier }} is not set for this recipient"
        in rows["bob@example.com"].reason
    )
    assert rows["cy@example.com"].state == DeliveryState.FAILED
    assert "{{ contact.first_name }} is empty for this recipient" in rows["cy@example.com"].reason
    (received,) = smtp_server.wait_for(1)
    letter = BytesParser(policy=default_policy).parsebytes(received.data)
    assert "your tier is gold." in letter.get_body(preferencelist=("html",)).get_content()


def test_a_contract_letter_stored_for_contacts_fails_each_row_naming_the_contract(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    # Stored as older versions were, unchecked: the send, not the editor, must catch it.
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com", first_name="Ann")
        version = make_unchecked_version(
            s,
            html='<p>Your {{ contract.product }} cover ends.</p><a href="{{ renewal_url }}">R</a>',
        )
        campaign = scheduling.create_campaign(
            s, "Old", segment_id=make_segment(s).id, letter_version_id=version.id
        )
        scheduling.schedule(s, campaign.id, send_at=utcnow())
        (launch,) = scheduling.launch_due(s, now=utcnow())
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, launch.batches[0], mailer=mailer, settings=settings)
    mailer.close()
    assert (result.sent, result.failed) == (0, 1)
    with db.unit_of_work() as s:
        (row,) = s.scalars(select(Delivery))
    assert row.state == DeliveryState.FAILED
    assert row.reason.startswith("html: {{ contract }} is missing")
    assert smtp_server.messages == []


def test_the_preview_shows_the_missing_field_inline(db: Database, settings: Settings) -> None:
    app = create_test_app(settings, db)
    with db.unit_of_work() as s:
        users.create_user(s, "viewer@example.com", PASSWORD, role="viewer")
        version_id = make_unchecked_version(s, html="<p>Dear {{ contact.nickname }}</p>").id
        guarded_id = make_version(s, name="Guarded", category=SERVICE, html=GUARDED).id
    client = app.test_client()
    login(client, "viewer")
    answer = client.get(f"/letters/versions/{version_id}/preview")
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'role="alert"' in page and "{{ contact.nickname }} is not a merge field" in page
    assert "Dear </p>" not in page
    assert "Annual" in client.get(f"/letters/versions/{guarded_id}/preview").get_data(as_text=True)
    without = client.get(f"/letters/versions/{guarded_id}/preview?contract=0")
    assert without.status_code == 200 and "Annual" not in without.get_data(as_text=True)


def test_the_demo_campaign_uses_a_letter_that_needs_only_the_contact(db: Database) -> None:
    with db.unit_of_work() as s:
        campaign = demo.load(s, today=utcnow().date(), now=utcnow())
        assert campaign.letter_version.needs == LetterNeeds.CONTACT
        needs = {v.letter.name: v.needs for v in authoring.list_versions(s)}
    assert needs == {
        "Welcome": LetterNeeds.CONTRACT, "Expiry reminder": LetterNeeds.CONTRACT,
        "Renewal offer": LetterNeeds.CONTRACT, "Policy re-statement": LetterNeeds.CONTACT,
        "Satisfaction survey": LetterNeeds.CONTACT, "Points running low": LetterNeeds.CONTACT,
    }  # fmt: skip


def test_the_campaign_form_refuses_the_pairing_and_says_what_to_do(
    db: Database, settings: Settings
) -> None:
    app = create_test_app(settings, db)
    with db.unit_of_work() as s:
        users.create_user(s, "editor@example.com", PASSWORD, role="editor")
        version_id = make_version(s, name="Expiry", category=SERVICE,
                                  html="<p>Ends {{ contract.ends_on }}</p>").id  # fmt: skip
        segment_id = make_segment(s, "Everyone").id
    client = app.test_client()
    login(client, "editor")
    form = client.get("/campaigns/new").get_data(as_text=True)
    assert "Expiry v1 — Hello {{ contact.first_name }} (needs a contract)" in form
    token = csrf_token(client, "/campaigns/new")
    answer = client.post("/campaigns", data={
        "name": "Expiry", "segment_id": segment_id, "letter_version_id": version_id,
        "csrf_token": token,
    }, follow_redirects=True)  # fmt: skip
    page = html.unescape(answer.get_data(as_text=True))
    assert "Campaign not created: the letter Expiry v1 needs a contract" in page
    assert "choose a segment that targets contracts" in page


def test_injection_and_contact_fields_with_markup_at_send_time(
    db: Database, settings: Settings, smtp_server: SMTPCatcher
) -> None:
    # RELIABILITY 23 and 31 at send time: the payload fails its row; the markup is shown as text.
    with db.unit_of_work() as s:
        make_contact(s, "ann@example.com", first_name="<b>{{ 7*7 }}</b>")
        good = make_version(s, name="Hello", category=SERVICE,
                            html="<p>Dear {{ contact.first_name }}</p>")  # fmt: skip
        evil = make_unchecked_version(s, html="<p>{{ ''.__class__.__mro__ }}</p>")
        segment_id = make_segment(s).id
        for name, version in (("Good", good), ("Evil", evil)):
            campaign = scheduling.create_campaign(s, name, segment_id=segment_id,
                                                  letter_version_id=version.id)  # fmt: skip
            scheduling.schedule(s, campaign.id, send_at=utcnow())
        launches = scheduling.launch_due(s, now=utcnow())
    batch = sorted(i for launch in launches for ids in launch.batches for i in ids)
    mailer = SMTPMailer(smtp_server.url)
    result = sending.deliver_batch(db, batch, mailer=mailer, settings=settings)
    mailer.close()
    assert (result.sent, result.failed) == (1, 1)
    with db.unit_of_work() as s:
        failed = s.scalars(select(Delivery).where(Delivery.state == DeliveryState.FAILED)).one()
    assert "not allowed in a letter" in failed.reason
    (received,) = smtp_server.wait_for(1)
    letter = BytesParser(policy=default_policy).parsebytes(received.data)
    assert letter["Subject"] == "Hello <b>{{ 7*7 }}</b>"
    assert "Dear &lt;b&gt;{{ 7*7 }}&lt;/b&gt;" in letter.get_body(("html",)).get_content()
