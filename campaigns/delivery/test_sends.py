"""Test sends and previews for a real recipient: a letter rendered for a chosen contact and
contract (or the sample one) and, for a test send, sent to any address through SMTP.

A test send is not a delivery: no ledger row, no tracking. Its links point where the
letter's links point, its own links (unsubscribe, renewal …) carry no real token, and the
audit trail records who sent which version to whom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from sqlalchemy.orm import Session, selectinload

from campaigns.accounts import audit
from campaigns.audience import contacts
from campaigns.config import Settings
from campaigns.delivery.mailer import Letter as MimeLetter
from campaigns.delivery.mailer import (
    Mailer,
    SMTPMailer,
    build_message,
    dkim_signer,
    new_message_id,
)
from campaigns.delivery.sending import RETURN_PATH_USER, service_points
from campaigns.errors import ConfigError, NotFound, ValidationError
from campaigns.letters import authoring, context, rendering, translations
from campaigns.models import Contact, LetterCategory, LetterKind, ServiceSettings

SUBJECT_PREFIX = "[Test] "
SEARCH_LIMIT = 10


@dataclass(frozen=True)
class Choice:
    """A contact the editor may preview for, with its contracts (id → label)."""

    id: int
    email: str
    name: str
    contracts: list[dict[str, Any]]


def find_recipients(session: Session, query: str) -> list[Choice]:
    """Contacts whose address (or name) starts with `query`, with their contracts."""
    if len(query.strip()) < 2:
        return []
    page = contacts.search_contacts(session, query=query, limit=SEARCH_LIMIT)
    return [
        Choice(
            id=c.id,
            email=c.email,
            name=c.display_name,
            contracts=[
                {
                    "id": k.id,
                    "label": f"{k.product} {k.plan or ''}".strip()
                    + f", ends {k.ends_on.isoformat()} ({k.status})",
                }
                for k in sorted(c.contracts, key=lambda k: k.ends_on, reverse=True)
            ],
        )  # fmt: skip
        for c in page.contacts
    ]


def recipient(
    session: Session, *, kind: LetterKind, contact_id: int | None, contract_id: int | None,
    survey_scale: str = "csat",
) -> context.Recipient | None:  # fmt: skip
    """Read a real contact (and one of its contracts) as plain values; None: the sample.

    Without a contract the recipient is one of a segment of contacts: a letter that uses
    the contract fails for them with the missing field named, as it would at send time.
    """
    if contact_id is None:
        if contract_id is not None:
            raise ValidationError("choose the contact before its contract", field="contract_id")
        return None
    contact = session.get(Contact, contact_id, options=[selectinload(Contact.contracts)])
    if contact is None or contact.erased_at is not None:
        raise NotFound(f"no contact #{contact_id}")
    contract = None
    if contract_id is not None:
        contract = next((k for k in contact.contracts if k.id == contract_id), None)
        if contract is None:
            raise ValidationError(f"contract #{contract_id} is not {contact.email}'s",
                                  field="contract_id")  # fmt: skip
    # The same values a ledger row's letter gets (delivery.sending._drafts).
    person, cover, renewal_target = context.recipient_values(
        contact, contract, service_points=service_points(session, {contact.id}).get(contact.id, 0)
    )
    terms = context.service_terms(session.get(ServiceSettings, 1))
    return context.Recipient(delivery_id=0, kind=kind, links={}, contact=person, contract=cover,
                             renewal_target=renewal_target, service=terms,
                             survey_scale=survey_scale)  # fmt: skip


def merge_fields(
    who: context.Recipient | None, *, settings: Settings, kind: LetterKind = LetterKind.OTHER,
    survey_scale: str = "csat",
) -> dict[str, Any]:  # fmt: skip
    """The merge context of a preview or test send: the recipient's, else the sample's."""
    if who is None:
        return context.sample_context(kind=kind, survey_scale=survey_scale)
    return context.preview_context(who, company=settings.company, sender_name=settings.sender_name,
                                   public_url=settings.public_url)  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """What a test send takes, read in a unit of work: rendering it needs no session."""

    version_id: int
    version_number: int
    letter_id: int
    category: LetterCategory
    kind: LetterKind
    locale: str
    subject: str
    html: str
    text: str
    urls: list[str]
    recipient: context.Recipient | None
    survey_scale: str = "csat"


def prepare(
    session: Session, version_id: int, *, locale: str | None, contact_id: int | None,
    contract_id: int | None,
) -> Prepared:  # fmt: skip
    """Read the version (in the contact's locale, else `locale`) and the recipient."""
    version = authoring.get_version(session, version_id)
    letter = version.letter
    who = recipient(session, kind=letter.kind, contact_id=contact_id, contract_id=contract_id,
                    survey_scale=letter.survey_scale)  # fmt: skip
    wanted = str(who.contact.get("locale") or "") if who is not None else ""
    chosen = translations.content_for(version, wanted or locale)
    return Prepared(
        version_id=version.id, version_number=version.number, letter_id=letter.id,
        category=letter.category, kind=letter.kind, locale=chosen.locale,
        subject=chosen.subject, html=chosen.html, text=chosen.text,
        urls=[link.url for link in sorted(version.links, key=lambda link: link.position)],
        recipient=who, survey_scale=letter.survey_scale,
    )  # fmt: skip


def address(to: str) -> str:
    """The one address a test goes to; refuse anything else (names, lists, line breaks)."""
    to = to.strip()
    _name, email = parseaddr(to)
    if not email or email != to or "@" not in email or any(c in to for c in " ,;<>\r\n\t"):
        raise ValidationError("give one e-mail address to send the test to", field="to")
    return email


def send(prepared: Prepared, to: str, *, settings: Settings, mailer: Mailer | None = None) -> str:
    """Render the prepared version and send it to `to` with "[Test]" before its subject.

    Returns the Message-ID. Raises ConfigError when no SMTP server is configured, a
    TemplateError when the letter cannot be rendered for this recipient, a SendError when
    the server refuses it. Call it outside any unit of work.
    """
    to = address(to)
    if mailer is None and not settings.smtp_url:
        raise ConfigError("no SMTP server is configured: set SMTP_URL (smtp://host:port) "
                          "and restart to send test letters")  # fmt: skip
    fields: Mapping[str, Any] = merge_fields(prepared.recipient, settings=settings,
                                             kind=prepared.kind,
                                             survey_scale=prepared.survey_scale)  # fmt: skip
    urls = prepared.urls
    # The letter's own links, untracked: the tester can follow them.
    fields = {**fields, "link_url": lambda i: urls[i] if 0 <= i < len(urls) else "#"}
    rendered = rendering.render_version(subject=prepared.subject, html=prepared.html,
                                        text=prepared.text, context=fields)  # fmt: skip
    headers: tuple[tuple[str, str], ...] = ()
    if prepared.category == LetterCategory.MARKETING:
        headers = (("List-Unsubscribe", f"<{fields['unsubscribe_url']}>"),
                   ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))  # fmt: skip
    letter = MimeLetter(
        sender_name=settings.sender_name, sender_email=settings.sender_email, to=to,
        subject=SUBJECT_PREFIX + rendered.subject, html=rendered.html, text=rendered.text,
        headers=headers,
    )  # fmt: skip
    message_id = new_message_id(settings.sender_domain)
    data = build_message(letter, message_id=message_id, signer=dkim_signer(settings))
    own = mailer is None
    smtp = mailer or SMTPMailer(str(settings.smtp_url), timeout=settings.smtp_timeout)
    try:
        # No ledger row to name: bounces of a test still go to the bounce receiver (which
        # records nothing for them), with the same envelope domain as the real letters.
        smtp.send(f"{RETURN_PATH_USER}@{settings.bounces.domain}", [to], data)
    finally:
        if own:
            smtp.close()
    return message_id


def record(
    session: Session, prepared: Prepared, *, to: str, user_id: int | None, outcome: str
) -> None:
    """Put a test send (sent, or why not) in the audit trail."""
    who = prepared.recipient.contact["email"] if prepared.recipient else "sample data"
    audit.record(session, "letter_version.test_send", user_id=user_id,
                 target_type="letter_version", target_id=prepared.version_id, to=to,
                 recipient=who, locale=prepared.locale, outcome=outcome)  # fmt: skip
