"""GDPR erasure: a contact's personal data removed, its row and ledger kept for the counts.

The contact row stays (deliveries, events and conversions point at it, and reports count
them) but nothing in it or around it says who the person was: the address becomes a
placeholder no mail server will accept, names, attributes, ids from the CRM and the
contracts' own attributes and links are cleared, and the ledger rows, events and webhooks
lose the address and the user agent (survey responses their comment). The address is not
put on the suppression list: erasure must not keep it anywhere. An erased contact is left
out of every read of the API.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from campaigns.db import require, utcnow
from campaigns.models import (
    Acknowledgment,
    Contact,
    ContactStatusChange,
    Contract,
    Delivery,
    DeliveryState,
    Event,
    SegmentMember,
    SurveyResponse,
    WebhookDelivery,
)

# RFC 2606 reserves `.invalid`: no resolver answers for it, so no letter can ever leave.
PLACEHOLDER_DOMAIN = "erased.invalid"


def placeholder_email(contact_id: int) -> str:
    """The non-deliverable address an erased contact keeps, unique per contact."""
    return f"erased-{contact_id}@{PLACEHOLDER_DOMAIN}"


def erase_contact(session: Session, contact_id: int, *, now: datetime | None = None) -> Contact:
    """Remove a contact's personal data for good; erasing it again changes nothing."""
    contact = require(session, Contact, contact_id, what="contact")
    if contact.erased_at is not None:
        return contact
    now = now or utcnow()
    email = placeholder_email(contact.id)
    contact.email = email
    contact.first_name = ""
    contact.last_name = ""
    contact.attributes = {}
    contact.external_id = None
    contact.customer_since = None
    contact.locale = "en"
    contact.time_zone = "UTC"
    contact.erased_at = now
    session.execute(
        update(Contract)
        .where(Contract.contact_id == contact.id)
        .values(attributes={}, external_id=None, renewal_url=None)
    )
    # Ledger rows stay, so campaign and segment counts do not move; the address goes, and
    # so does what each letter was rendered from (names, attributes: letters.context.snapshot).
    session.execute(
        update(Delivery).where(Delivery.contact_id == contact.id).values(email=email, detail={})
    )
    # An acknowledgment keeps which version was accepted and when, not from where.
    session.execute(
        update(Acknowledgment)
        .where(Acknowledgment.contact_id == contact.id)
        .values(remote_addr="", user_agent="")
    )
    # A survey response keeps its score (the figures), not what the customer wrote.
    session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.contact_id == contact.id)
        .values(comment="", remote_addr="", user_agent="")
    )
    # A letter still waiting would go to the placeholder: it ends suppressed, with the reason.
    session.execute(
        update(Delivery)
        .where(Delivery.contact_id == contact.id, Delivery.state == DeliveryState.QUEUED)
        .values(state=DeliveryState.SUPPRESSED, reason="contact erased")
    )
    session.execute(
        update(Event).where(Event.contact_id == contact.id).values(user_agent="", detail={})
    )
    session.execute(
        update(ContactStatusChange)
        .where(ContactStatusChange.contact_id == contact.id)
        .values(reason="")
    )
    # Webhooks kept in their log, and those still to go, name the placeholder (a bounce's
    # detail quotes the address). Erasures are rare: a scan of the log is affordable.
    about = WebhookDelivery.payload[("data", "contact_id")].as_integer() == contact.id
    for hook in session.scalars(select(WebhookDelivery).where(about)):
        data = dict(hook.payload.get("data") or {}, email=email)
        data |= {"detail": {}} if "detail" in data else {}
        data |= {"comment": ""} if "comment" in data else {}  # a survey detractor's
        hook.payload = dict(hook.payload, data=data)
    # Static segments list people by hand; an erased contact is nobody's member any more.
    session.execute(delete(SegmentMember).where(SegmentMember.contact_id == contact.id))
    session.flush()
    return contact
