"""Send a batch of ledger rows: claim atomically, re-check suppression, render, send, record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from campaigns.config import Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import feedback, ledger, scheduling
from campaigns.delivery.mailer import (
    AmbiguousSendError,
    Letter,
    Mailer,
    PermanentSendError,
    TransientSendError,
    build_message,
    new_message_id,
)
from campaigns.delivery.throttle import Throttle
from campaigns.delivery.tokens import Tokens
from campaigns.errors import ValidationError
from campaigns.letters import rendering
from campaigns.models import (
    Campaign,
    Contact,
    Contract,
    Delivery,
    DeliveryState,
    LetterCategory,
    LetterVersion,
)

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
DEFER_SECONDS = 2  # a batch handed back by a saturated rate is tried again this much later


@dataclass
class BatchResult:
    """What happened to the rows of one batch; `retry` holds ids released for a later try."""

    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    ambiguous: int = 0
    skipped: int = 0
    retry: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)  # handed back by a rate, no attempt


def claim(
    session: Session, delivery_ids: list[int], *, now: datetime, worker: str = ""
) -> list[int]:
    """Move queued rows to sending for `worker` and return those this caller won.

    `UPDATE … WHERE state = 'queued'` is atomic on SQLite and PostgreSQL, so a message
    delivered twice, or two workers on the same batch, never send a row twice.
    """
    if not delivery_ids:
        return []
    result = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.QUEUED)
        .values(
            state=DeliveryState.SENDING,
            claimed_at=now,
            claimed_by=worker or None,
            in_flight_at=None,
            attempts=Delivery.attempts + 1,
        )  # fmt: skip
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(row[0] for row in result)


def finish(
    session: Session, delivery_id: int, state: DeliveryState, *, reason: str = "",
    message_id: str | None = None, now: datetime | None = None,
) -> None:  # fmt: skip
    """Record the outcome of a row that is `sending`."""
    values: dict[str, Any] = {"state": state, "reason": reason[:2000], "in_flight_at": None}
    if state == DeliveryState.SENT:
        values.update(message_id=message_id, sent_at=now or utcnow())
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.SENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def suppression_reason(contact: Contact, category: LetterCategory) -> str | None:
    """Why this contact must not get a letter of this category now, or None."""
    if contact.status in ledger.SUPPRESSED_STATUSES[category]:
        return f"contact is {contact.status}"
    return None


@dataclass(frozen=True)
class Draft:
    """Everything one ledger row's letter needs, as plain values: rendering it needs no session."""

    delivery_id: int
    email: str
    attempts: int
    campaign_id: int | None
    rate_per_minute: int | None  # the campaign's own rate, if it has one
    category: LetterCategory
    subject: str
    html: str
    text: str
    links: dict[int, int]  # position in the version → stored link id
    contact: dict[str, Any]
    contract: dict[str, Any] | None
    renewal_url: str


def draft(session: Session, delivery: Delivery, contact: Contact, version: LetterVersion) -> Draft:
    """Read what the letter of this row needs, so it can be rendered after the session closes."""
    contract = session.get(Contract, delivery.contract_id) if delivery.contract_id else None
    campaign = session.get(Campaign, delivery.campaign_id) if delivery.campaign_id else None
    return Draft(
        delivery_id=delivery.id, email=delivery.email, attempts=delivery.attempts,
        campaign_id=delivery.campaign_id,
        rate_per_minute=campaign.rate_per_minute if campaign else None,
        category=version.letter.category, subject=version.subject,
        html=version.compiled_html, text=version.compiled_text,
        links={link.position: link.id for link in version.links},
        contact={"email": contact.email, "first_name": contact.first_name,
                 "last_name": contact.last_name, "name": contact.display_name,
                 "locale": contact.locale, "attributes": dict(contact.attributes)},
        contract=None if contract is None else {
            "product": contract.product, "plan": contract.plan, "starts_on": contract.starts_on,
            "ends_on": contract.ends_on, "price": str(contract.price),
            "currency": contract.currency, "service_points": contract.service_points,
            "attributes": dict(contract.attributes)},
        renewal_url=(contract.renewal_url or "") if contract else "",
    )  # fmt: skip


def letter_context(draft: Draft, *, settings: Settings, tokens: Tokens) -> dict[str, Any]:
    """The merge fields of one letter: plain values only, never ORM objects."""
    base = settings.public_url
    delivery_id, links = draft.delivery_id, draft.links

    def link_url(position: int) -> str:
        return f"{base}/c/{tokens.sign('click', delivery_id, links[position])}"

    return {
        "contact": draft.contact,
        "contract": draft.contract,
        "unsubscribe_url": f"{base}/u/{tokens.sign('unsubscribe', delivery_id)}",
        "renewal_url": draft.renewal_url,
        "open_pixel_url": f"{base}/o/{tokens.sign('open', delivery_id)}.gif",
        "link_url": link_url,
        "sender_name": settings.sender_name,
    }


def compose(draft: Draft, *, settings: Settings, tokens: Tokens) -> tuple[str, bytes]:
    """Render the letter of one ledger row; return its fresh Message-ID and its bytes.

    Call it outside any unit of work: rendering may take up to rendering.RENDER_SECONDS,
    and on SQLite an open transaction holds the write lock for every other writer.
    """
    context = letter_context(draft, settings=settings, tokens=tokens)
    rendered = rendering.render_version(
        subject=draft.subject, html=draft.html, text=draft.text, context=context
    )
    headers: list[tuple[str, str]] = []
    if draft.category == LetterCategory.MARKETING:
        headers += [
            ("List-Unsubscribe", f"<{context['unsubscribe_url']}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    letter = Letter(
        sender_name=settings.sender_name, sender_email=settings.sender_email, to=draft.email,
        subject=rendered.subject, html=rendered.html, text=rendered.text, headers=tuple(headers),
    )  # fmt: skip
    message_id = new_message_id(settings.sender_domain)
    return message_id, build_message(letter, message_id=message_id)


def deliver_batch(
    db: Database,
    delivery_ids: list[int],
    *,
    mailer: Mailer,
    settings: Settings,
    worker: str = "",
    throttle: Throttle | None = None,
    now: Callable[[], datetime] = utcnow,
) -> BatchResult:
    """Claim and send a batch of ledger rows; each outcome is committed as it happens.

    This is the one domain function that owns its transactions: a letter's outcome must be
    on disk before the next letter goes, so a crash loses at most one letter's record.
    Each letter is read in one short unit of work, rendered and sent with none open, and
    recorded in another, so a slow template or server never blocks other writers.
    """
    tokens = Tokens.from_settings(settings)
    result = BatchResult()
    with db.unit_of_work() as session:
        claimed = claim(session, delivery_ids, now=now(), worker=worker)
    result.skipped = len(delivery_ids) - len(claimed)
    campaigns: set[int] = set()
    for index, delivery_id in enumerate(claimed):
        try:
            with db.unit_of_work() as session:
                prepared = _prepare(session, delivery_id, campaigns, now=now())
            if isinstance(prepared, Draft):
                message_id, data = compose(prepared, settings=settings, tokens=tokens)
                envelope = (settings.sender_email, [prepared.email], data)
        except SQLAlchemyError:
            raise  # the database, not this letter: the actor's retry deals with it
        except Exception as exc:
            # Whatever went wrong preparing this one letter (a template, a broken row, a
            # header), it fails this row only, with the reason; the batch goes on.
            if not isinstance(exc, ValidationError):
                log.exception("letter of ledger row %s could not be prepared", delivery_id)
            with db.unit_of_work() as session:
                finish(session, delivery_id, DeliveryState.FAILED, reason=_reason(exc))
            result.failed += 1
            continue
        if not isinstance(prepared, Draft):
            if prepared == DeliveryState.SUPPRESSED:
                result.suppressed += 1
            else:
                result.skipped += 1  # handed back to `queued`
            continue
        if throttle is not None and not throttle.wait(
            campaign_id=prepared.campaign_id, rate_per_minute=prepared.rate_per_minute,
            domain=prepared.email.rpartition("@")[2],
        ):  # fmt: skip
            # A rate is saturated: hand this row and the rest back untouched, for later.
            with db.unit_of_work() as session:
                release(session, claimed[index:], refund=True,
                        due_at=now() + timedelta(seconds=DEFER_SECONDS))  # fmt: skip
            result.deferred.extend(claimed[index:])
            break
        outcome = _send(mailer, envelope, prepared.attempts)
        with db.unit_of_work() as session:
            if outcome.state is None:
                due_at = now() + timedelta(seconds=retry_delay_seconds(prepared.attempts))
                if outcome.stop_batch:
                    # The server is unreachable: give every remaining row back untouched.
                    release(session, claimed[index:], refund=True, due_at=due_at)
                    result.retry.extend(claimed[index:])
                    break
                release(session, [delivery_id], due_at=due_at)
                result.retry.append(delivery_id)
                continue
            finish(session, delivery_id, outcome.state, reason=outcome.reason,
                   message_id=message_id, now=now())  # fmt: skip
            if outcome.state == DeliveryState.FAILED:
                feedback.suppress_if_hard_bounce(session, delivery_id, outcome.reason)
            setattr(result, outcome.state.value, getattr(result, outcome.state.value) + 1)
    with db.unit_of_work() as session:
        for campaign_id in campaigns:
            if feedback.pause_on_error_storm(session, campaign_id) is None:
                scheduling.complete_if_done(session, campaign_id, now=now())
    return result


def _prepare(
    session: Session, delivery_id: int, campaigns: set[int], *, now: datetime
) -> Draft | DeliveryState:
    """Read what the letter of a claimed row needs, or hand the row back or suppress it.

    A row that will be sent is marked in flight in this same commit, just before its
    letter is rendered and handed to SMTP: if the worker dies from here until the outcome
    is recorded, the reaper makes it `ambiguous` instead of sending it again. (A death
    while rendering, a few milliseconds, makes a letter that never left `ambiguous` too:
    the safe side.)
    """
    delivery = session.get_one(Delivery, delivery_id)
    if delivery.campaign_id is not None:
        campaigns.add(delivery.campaign_id)
    if not scheduling.is_sending(session, delivery.campaign_id):
        # Paused or cancelled since the batch was enqueued: hand the row back
        # without counting an attempt; resuming enqueues it again.
        release(session, [delivery_id], refund=True, due_at=now)
        return DeliveryState.QUEUED
    contact = session.get_one(Contact, delivery.contact_id)
    version = session.get_one(LetterVersion, delivery.letter_version_id)
    reason = suppression_reason(contact, version.letter.category)
    if reason:
        finish(session, delivery_id, DeliveryState.SUPPRESSED, reason=reason)
        return DeliveryState.SUPPRESSED
    prepared = draft(session, delivery, contact, version)
    delivery.in_flight_at = now
    return prepared


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return str(exc)
    return f"the letter could not be prepared: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _Outcome:
    state: DeliveryState | None  # None: release the row for a later try
    reason: str = ""
    stop_batch: bool = False


def _send(mailer: Mailer, envelope: tuple[str, list[str], bytes], attempts: int) -> _Outcome:
    try:
        mailer.send(*envelope)
    except PermanentSendError as exc:
        return _Outcome(DeliveryState.FAILED, str(exc))
    except AmbiguousSendError as exc:
        return _Outcome(DeliveryState.AMBIGUOUS, str(exc))
    except TransientSendError as exc:
        if exc.server_down:
            log.warning("SMTP unreachable, batch released: %s", exc)
            return _Outcome(None, str(exc), stop_batch=True)
        if attempts >= MAX_ATTEMPTS:
            return _Outcome(DeliveryState.FAILED, f"gave up after {attempts} attempts: {exc}")
        return _Outcome(None, str(exc))
    return _Outcome(DeliveryState.SENT)


def release(
    session: Session, delivery_ids: list[int], *, due_at: datetime, refund: bool = False
) -> None:
    """Put `sending` rows back to `queued`, due again at `due_at`; a refund keeps the attempt."""
    values: dict[str, Any] = {
        "state": DeliveryState.QUEUED, "claimed_at": None, "claimed_by": None,
        "in_flight_at": None, "due_at": due_at,
    }  # fmt: skip
    if refund:
        values["attempts"] = Delivery.attempts - 1
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.SENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def retry_delay_seconds(attempts: int) -> int:
    """Back-off before the next try: 1, 2, 4, 8 … minutes."""
    return int(60 * 2 ** max(0, attempts - 1))


def highest_attempt(session: Session, delivery_ids: list[int]) -> int:
    """The most attempts any of these rows has had, to pick a back-off."""
    query = select(Delivery.attempts).where(Delivery.id.in_(delivery_ids))
    return max(session.scalars(query), default=0)
