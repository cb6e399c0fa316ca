"""Send a batch of ledger rows: claim atomically, re-check suppression, render, send, record."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, joinedload, selectinload

from campaigns.config import Caps, Settings
from campaigns.db import Database, utcnow
from campaigns.delivery import caps as capping
from campaigns.delivery import feedback, ledger, marks, scheduling
from campaigns.delivery.mailer import (
    AmbiguousSendError,
    Letter,
    Mailer,
    PermanentSendError,
    SendError,
    TransientSendError,
    build_message,
    dkim_signer,
    new_message_id,
)
from campaigns.delivery.marks import Outcome
from campaigns.delivery.throttle import Throttle
from campaigns.delivery.tokens import Tokens
from campaigns.errors import ValidationError
from campaigns.letters import context, rendering, translations
from campaigns.models import (
    Campaign,
    CampaignStatus,
    Contact,
    Contract,
    Delivery,
    DeliveryState,
    LetterCategory,
    LetterKind,
    LetterVersion,
    PointsEntry,
    ServiceSettings,
    Suppression,
)

log = logging.getLogger(__name__)
_M = TypeVar("_M")
MAX_ATTEMPTS = 5
DEFER_SECONDS = 2  # a batch handed back by a saturated rate is tried again this much later
RETURN_PATH_USER = "bounces"  # the local part of every envelope sender (return_path)


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
    marks.record(session.connection(), [Outcome(delivery_id, state, reason, message_id)],
                 now=now or utcnow())  # fmt: skip


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
    kind: LetterKind
    subject: str
    html: str
    text: str
    links: dict[int, int]  # position in the version → stored link id
    contact: dict[str, Any]
    contract: dict[str, Any] | None
    renewal_url: str
    locale: str = ""  # of the content chosen for the contact: a variant's, or the default
    # Every matching contract (a campaign to a contracts segment), soonest-ending first.
    contracts: tuple[dict[str, Any], ...] = ()
    survey_scale: str = "csat"  # the letter's rating scale, for a survey's rating links
    # The service settings' terms (context.service_terms), the same for the whole batch.
    service: dict[str, Any] = field(default_factory=dict)
    # Service points the letter's campaign gives this recipient (already in the balance
    # `contact.service_points`); written to the points ledger once the letter is sent.
    points_granted: int = 0


def letter_context(
    draft: Draft, *, settings: Settings, tokens: Tokens, now: datetime | None = None
) -> dict[str, Any]:
    """The merge fields of one letter (campaigns.letters.context): plain values, no ORM objects.

    A field this row has no value for (no contract, a contract without a renewal URL, an
    empty name) is a missing field: a letter that prints it fails this row, with the field
    named in the reason.
    """
    recipient = context.Recipient(
        delivery_id=draft.delivery_id, kind=draft.kind, contact=draft.contact,
        contract=draft.contract, renewal_target=draft.renewal_url, links=draft.links,
        contracts=draft.contracts, survey_scale=draft.survey_scale, service=draft.service,
    )  # fmt: skip
    merge_fields, _discount = context.build(
        recipient, company=settings.company, sender_name=settings.sender_name,
        public_url=settings.public_url, signer=tokens, now=now,
    )  # fmt: skip
    return merge_fields


# Letters a reader may unsubscribe from, so their headers offer it (RFC 8058 one-click);
# legal letters (policy re-statements) reach everyone and offer no unsubscribe.
UNSUBSCRIBABLE = (LetterCategory.MARKETING, LetterCategory.SERVICE)


class Composed(NamedTuple):
    """One rendered letter: its Message-ID, its bytes, and what the ledger row keeps of it."""

    message_id: str
    data: bytes
    detail: dict[str, Any]


def compose(draft: Draft, *, settings: Settings, tokens: Tokens) -> Composed:
    """Render the letter of one ledger row: its fresh Message-ID, its bytes, and the detail
    its ledger row keeps (the renewal discount it offered, if any).

    Call it outside any unit of work: rendering may take up to rendering.RENDER_SECONDS,
    and on SQLite an open transaction holds the write lock for every other writer.
    """
    at = utcnow()
    merge_fields = letter_context(draft, settings=settings, tokens=tokens, now=at)
    rendered = rendering.render_version(
        subject=draft.subject, html=draft.html, text=draft.text, context=merge_fields
    )
    # Feedback-ID (Gmail's feedback loop): campaign or automation : kind : category : sender.
    source = f"c{draft.campaign_id}" if draft.campaign_id is not None else "auto"
    headers = [("Feedback-ID", f"{source}:{draft.kind}:{draft.category}:{settings.sender_domain}")]
    if settings.reply_to:
        headers.append(("Reply-To", settings.reply_to))
    if draft.category in UNSUBSCRIBABLE:
        headers += [
            ("List-Unsubscribe", f"<{merge_fields['unsubscribe_url']}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    letter = Letter(
        sender_name=settings.sender_name, sender_email=settings.sender_email, to=draft.email,
        subject=rendered.subject, html=rendered.html, text=rendered.text, headers=tuple(headers),
    )  # fmt: skip
    message_id = new_message_id(settings.sender_domain)
    data = build_message(letter, message_id=message_id, signer=dkim_signer(settings))
    # The row keeps what the letter was rendered from, and a hash of what it said: the
    # view-online and acknowledgment pages show it again exactly as sent, and can prove it.
    detail: dict[str, Any] = {
        "recipient": context.snapshot(
            draft.contact,
            draft.contract,
            draft.renewal_url,
            at=at,
            contracts=draft.contracts,
            service=draft.service if _quotes_terms(draft) else None,
        ),
        "html_sha256": hashlib.sha256(rendered.html.encode()).hexdigest(),
    }
    if draft.points_granted:  # campaigns.service.points.apply_grants writes it once sent
        detail["points_granted"] = draft.points_granted
    discount = (merge_fields.get("contract") or {}).get("discount")
    if discount:
        detail["discount"] = _plain(discount)
    return Composed(message_id, data, detail)


def _quotes_terms(draft: Draft) -> bool:
    """Whether the letter may print the service settings (kept with it if so)."""
    return _prints_terms(draft.subject, draft.html, draft.text)


@functools.lru_cache(maxsize=64)
def _prints_terms(*parts: str) -> bool:
    # Once per content, not per letter: the drafts of a version share its strings.
    return any("service." in part or "incident_price" in part for part in parts)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values: amounts as strings, exactly as printed in the letter."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


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
    """Claim and send a batch of ledger rows; a crash leaves at most one letter's fate unknown.

    This is the one domain function that owns its transactions. The batch is claimed and
    read in one unit of work (a few set-based statements). Then, per letter, it is rendered
    with no transaction open, and the process's ledger writer (marks.Writer) records the
    previous letters' outcomes and marks this one in flight — only if its row is still
    ours, its contact still reachable and its campaign still running (RELIABILITY.md 6,
    14) — and has committed that before the letter is handed to SMTP. The server's reply
    to a letter's data is read once the next letter is rendered, before the next mark. A
    worker that dies leaves one row in flight per thread: the reaper makes it `ambiguous`,
    never sends it twice.
    """
    tokens = Tokens.from_settings(settings)
    result = BatchResult()
    with db.unit_of_work() as session:
        claimed = claim(session, delivery_ids, now=now(), worker=worker)
    drafts = _read_batch(db, claimed, result, now=now(), caps=settings.caps)
    result.skipped += len(delivery_ids) - len(claimed)
    campaigns = {d.campaign_id for d in drafts if d.campaign_id is not None}
    pending: list[Outcome] = []  # outcomes not yet written: they go with the next mark
    writer = marks.writer(db.engine)
    # The letter whose data went last, its server's reply not yet read: the next letter is
    # rendered meanwhile. It is settled (its outcome pending) before the next mark, so a
    # crash still leaves at most one letter in flight.
    in_flight: _InFlight | None = None

    def settle() -> None:
        """Read the reply of the letter in flight and note its outcome."""
        nonlocal in_flight
        if in_flight is not None:
            sent, in_flight = in_flight, None
            reply = _replied(sent.finish, sent.draft.attempts)
            _note(db, reply, sent.draft, sent.message_id, result, pending, now=now)

    try:
        for index, prepared in enumerate(drafts):
            try:
                message_id, data, detail = compose(prepared, settings=settings, tokens=tokens)
            except SQLAlchemyError:
                raise  # the database, not this letter: the actor's retry deals with it
            except Exception as exc:
                # Whatever went wrong preparing this one letter (a template, a broken row, a
                # header), it fails this row only, with the reason; the batch goes on.
                if not isinstance(exc, ValidationError):
                    log.exception("letter of ledger row %s could not be prepared",
                                  prepared.delivery_id)  # fmt: skip
                pending.append(Outcome(prepared.delivery_id, DeliveryState.FAILED, _reason(exc)))
                result.failed += 1
                continue
            settle()
            if throttle is not None and not throttle.wait(
                campaign_id=prepared.campaign_id, rate_per_minute=prepared.rate_per_minute,
                domain=prepared.email.rpartition("@")[2],
            ):  # fmt: skip
                # A rate is saturated: hand this row and the rest back untouched, for later.
                rest = [d.delivery_id for d in drafts[index:]]
                writer.write(pending, now=now())
                pending.clear()
                with db.unit_of_work() as session:
                    release(session, rest, refund=True,
                            due_at=now() + timedelta(seconds=DEFER_SECONDS))  # fmt: skip
                result.deferred.extend(rest)
                break
            mark = marks.Mark(prepared.delivery_id, prepared.category, str(prepared.kind),
                              prepared.locale, detail)  # fmt: skip
            marked = writer.write(pending, mark, now=now())
            pending.clear()
            if not marked:
                with db.unit_of_work() as session:
                    held = _settle_unmarked(session, prepared, now=now())
                setattr(result, held, getattr(result, held) + 1)
                continue
            sender = return_path(tokens, prepared.delivery_id, domain=settings.bounces.domain)
            try:
                finish = mailer.submit(sender, [prepared.email], data)
            except SendError as exc:
                reply = _note(db, _reply_to(exc, prepared.attempts), prepared, message_id,
                              result, pending, now=now)  # fmt: skip
                if reply is not None and reply.stop_batch:
                    # The server is unreachable: give every remaining row back untouched.
                    rest = [d.delivery_id for d in drafts[index + 1 :]]
                    with db.unit_of_work() as session:
                        release(session, rest, refund=True, due_at=_retry_at(prepared, now))
                    result.retry.extend(rest)
                    break
                continue
            in_flight = _InFlight(prepared, message_id, finish)
        settle()
    finally:
        if in_flight is not None:  # an error on the way: read the reply, keep the connection
            try:
                in_flight.finish()
            except SendError:
                pass
    writer.write(pending, now=now())
    with db.unit_of_work() as session:
        for campaign_id in campaigns:
            if feedback.pause_on_error_storm(session, campaign_id) is None:
                scheduling.complete_if_done(session, campaign_id, now=now())
    return result


class _InFlight(NamedTuple):
    draft: Draft
    message_id: str
    finish: Callable[[], None]  # reads the server's reply (Mailer.submit)


def _retry_at(draft: Draft, now: Callable[[], datetime]) -> datetime:
    return now() + timedelta(seconds=retry_delay_seconds(draft.attempts))


def _note(
    db: Database, reply: _Reply, draft: Draft, message_id: str, result: BatchResult,
    pending: list[Outcome], *, now: Callable[[], datetime],
) -> _Reply | None:  # fmt: skip
    """Count a letter's reply: an outcome to write, or its row given back for a later try
    (then the reply is returned)."""
    if reply.state is not None:
        pending.append(Outcome(draft.delivery_id, reply.state, reply.reason, message_id))
        setattr(result, reply.state.value, getattr(result, reply.state.value) + 1)
        return None
    with db.unit_of_work() as session:
        release(session, [draft.delivery_id], refund=reply.stop_batch,
                due_at=_retry_at(draft, now))  # fmt: skip
    result.retry.append(draft.delivery_id)
    return reply


def return_path(tokens: Tokens, delivery_id: int, *, domain: str) -> str:
    """The envelope sender of a ledger row's letter (VERP): its bounces name the row.

    `bounces+<signed id>@domain`: mail servers send bounces to it, and ARF reports and the
    returned headers of a DSN carry it as Return-Path (campaigns.tracking.bounces).
    """
    return f"{RETURN_PATH_USER}+{tokens.sign('bounce', delivery_id)}@{domain}"


def _read_batch(
    db: Database, claimed: list[int], result: BatchResult, *, now: datetime, caps: Caps
) -> list[Draft]:
    """Read the claimed rows' letters together; if one row cannot be read, row by row.

    A row the database holds but Python cannot read (a corrupt JSON column, say) fails
    alone, with the reason; no other row of the batch is left in `sending`.
    """
    try:
        together = BatchResult()
        with db.unit_of_work() as session:
            drafts = _drafts(session, claimed, together, now=now, caps=caps)
        result.suppressed += together.suppressed
        result.skipped += together.skipped
        return drafts
    except SQLAlchemyError:
        raise  # the database, not a row: the actor's retry (and the reaper) deal with it
    except Exception:
        log.exception("a row of the batch cannot be read; reading the rows one by one")
    drafts = []
    for delivery_id in claimed:
        try:
            with db.unit_of_work() as session:
                drafts += _drafts(session, [delivery_id], result, now=now, caps=caps)
        except SQLAlchemyError:
            raise
        except Exception as exc:
            with db.unit_of_work() as session:
                finish(session, delivery_id, DeliveryState.FAILED, reason=_reason(exc))
            result.failed += 1
    return drafts


def _drafts(
    session: Session, claimed: list[int], result: BatchResult, *, now: datetime, caps: Caps
) -> list[Draft]:
    """Read what the claimed rows' letters need in a few set-based statements.

    Rows whose campaign is no longer running are handed back (no attempt counted);
    rows whose contact may not receive this category of letter are suppressed; rows a
    frequency cap stops now (letters went out since they were decided) are suppressed, or
    for an automation deferred to a later slot.
    """
    if not claimed:
        return []
    deliveries = list(
        session.scalars(select(Delivery).where(Delivery.id.in_(claimed)).order_by(Delivery.id))
    )
    contacts = _by_id(session, Contact, {d.contact_id for d in deliveries})
    contracts = _by_id(session, Contract, {d.contract_id for d in deliveries if d.contract_id}
                       | {int(i) for d in deliveries for i in matching_ids(d)})  # fmt: skip
    versions = _by_id(
        session, LetterVersion, {d.letter_version_id for d in deliveries},
        selectinload(LetterVersion.links), selectinload(LetterVersion.variants),
        joinedload(LetterVersion.letter),
    )  # fmt: skip
    campaigns = _by_id(session, Campaign, {d.campaign_id for d in deliveries if d.campaign_id})
    points = service_points(session, set(contacts))
    terms = context.service_terms(session.get(ServiceSettings, 1))
    capped = capping.blocked_now(session, [
        (d.id, versions[d.letter_version_id].letter.category,
         capping.for_campaign(caps, campaigns.get(d.campaign_id or 0)))
        for d in deliveries
    ], now=now)  # fmt: skip
    drafts: list[Draft] = []
    handed_back: list[int] = []
    for delivery in deliveries:
        campaign = campaigns.get(delivery.campaign_id) if delivery.campaign_id else None
        if campaign is not None and campaign.status != CampaignStatus.RUNNING:
            handed_back.append(delivery.id)  # paused or cancelled since it was enqueued
            continue
        contact, version = contacts[delivery.contact_id], versions[delivery.letter_version_id]
        reason = suppression_reason(contact, version.letter.category)
        if reason or (delivery.id in capped and delivery.automation_step_id is None):
            finish(session, delivery.id, DeliveryState.SUPPRESSED,
                   reason=reason or capped[delivery.id])  # fmt: skip
            result.suppressed += 1
            continue
        if delivery.id in capped:  # the scheduler tick queues it again when a slot is free
            defer(session, delivery.id, reason=capped[delivery.id])
            result.skipped += 1
            continue
        contract = contracts.get(delivery.contract_id) if delivery.contract_id else None
        matching = [contracts[i] for i in matching_ids(delivery) if i in contracts]
        granted = campaign.grant_for(contact.customer_since, now.date()) if campaign else 0
        drafts.append(draft_of(delivery, contact, contract, version, campaign,
                               points.get(contact.id, 0) + granted, matching,
                               service=terms, granted=granted))  # fmt: skip
    if handed_back:
        release(session, handed_back, refund=True, due_at=now)
        result.skipped += len(handed_back)
    return drafts


def _by_id(session: Session, model: type[_M], ids: set[int], *options: Any) -> dict[int, _M]:
    if not ids:
        return {}
    query = select(model).where(model.id.in_(ids)).options(*options)  # type: ignore[attr-defined]
    return {row.id: row for row in session.scalars(query)}  # type: ignore[attr-defined]


def service_points(session: Session, contact_ids: set[int]) -> dict[int, int]:
    """Each contact's service points: the sum of their points ledger (0 without entries)."""
    if not contact_ids:
        return {}
    query = (
        select(PointsEntry.contact_id, func.sum(PointsEntry.amount))
        .where(PointsEntry.contact_id.in_(contact_ids))
        .group_by(PointsEntry.contact_id)
    )
    return {contact_id: int(total or 0) for contact_id, total in session.execute(query)}


def matching_ids(delivery: Delivery) -> list[int]:
    """The ids of every contract a campaign letter names (`Delivery.contract_ids`)."""
    return [int(i) for i in (delivery.contract_ids or "").split(",") if i]


def draft_of(
    delivery: Delivery, contact: Contact, contract: Contract | None, version: LetterVersion,
    campaign: Campaign | None, service_points: int, matching: list[Contract] | None = None, *,
    service: dict[str, Any] | None = None, granted: int = 0,
) -> Draft:  # fmt: skip
    """The Draft of one ledger row, from its rows read in a unit of work."""
    content = translations.content_for(version, contact.locale)  # the contact's locale variant
    person, cover, renewal_url = context.recipient_values(
        contact, contract, service_points=service_points
    )
    return Draft(
        delivery_id=delivery.id, email=delivery.email, attempts=delivery.attempts,
        campaign_id=delivery.campaign_id,
        rate_per_minute=campaign.rate_per_minute if campaign else None,
        category=version.letter.category, kind=version.letter.kind, locale=content.locale,
        subject=content.subject, html=content.html, text=content.text,
        links={link.position: link.id for link in version.links},
        contact=person, contract=cover, renewal_url=renewal_url,
        contracts=tuple(context.contract_values(c)
                        for c in sorted(matching or (), key=lambda c: (c.ends_on, c.id))),
        survey_scale=version.letter.survey_scale, service=service or {}, points_granted=granted,
    )  # fmt: skip


def _settle_unmarked(session: Session, draft: Draft, *, now: datetime) -> str:
    """Settle a row whose in-flight mark was refused (marks.Writer), and name the result field: no
    longer ours (taken back by the reaper), suppressed meanwhile, or its campaign paused."""
    blocked = ledger.SUPPRESSED_STATUSES[draft.category]
    listed = exists().where(Suppression.email == Delivery.email)
    state, status, erased, on_list, opted_out = session.execute(
        select(Delivery.state, Contact.status, Contact.erased_at, listed,
               ledger.opted_out(draft.category, draft.kind))
        .join(Contact, Contact.id == Delivery.contact_id)
        .where(Delivery.id == draft.delivery_id)
    ).one()  # fmt: skip
    if state != DeliveryState.SENDING:
        return "skipped"  # no longer ours (taken back by the reaper meanwhile)
    if on_list or erased or status in blocked or opted_out:
        why = (
            "address is on the suppression list" if on_list
            else "contact was erased" if erased
            else f"contact is {status}" if status in blocked
            else ledger.opted_out_reason(draft.kind)
        )  # fmt: skip
        finish(session, draft.delivery_id, DeliveryState.SUPPRESSED, reason=why)
        return "suppressed"
    release(session, [draft.delivery_id], refund=True, due_at=now)  # paused meanwhile
    return "skipped"


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return str(exc)
    return f"the letter could not be prepared: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _Reply:
    state: DeliveryState | None  # None: release the row for a later try
    reason: str = ""
    stop_batch: bool = False


def _replied(finish: Callable[[], None], attempts: int) -> _Reply:
    """Read a submitted letter's reply (Mailer.submit) as a _Reply."""
    try:
        finish()
    except SendError as exc:
        return _reply_to(exc, attempts)
    return _Reply(DeliveryState.SENT)


def _reply_to(exc: SendError, attempts: int) -> _Reply:
    if isinstance(exc, PermanentSendError):
        return _Reply(DeliveryState.FAILED, str(exc))
    if isinstance(exc, AmbiguousSendError):
        return _Reply(DeliveryState.AMBIGUOUS, str(exc))
    if isinstance(exc, TransientSendError) and exc.server_down:
        log.warning("SMTP unreachable, batch released: %s", exc)
        return _Reply(None, str(exc), stop_batch=True)
    if attempts >= MAX_ATTEMPTS:
        return _Reply(DeliveryState.FAILED, f"gave up after {attempts} attempts: {exc}")
    return _Reply(None, str(exc))


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


def defer(session: Session, delivery_id: int, *, reason: str) -> None:
    """Hand a `sending` automation letter back to wait for a free slot (no attempt spent)."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.SENDING)
        .values(state=DeliveryState.DEFERRED, reason=reason, claimed_at=None, claimed_by=None,
                attempts=Delivery.attempts - 1)
        .execution_options(synchronize_session=False)
    )  # fmt: skip


def retry_delay_seconds(attempts: int) -> int:
    """Back-off before the next try: 1, 2, 4, 8 … minutes."""
    return int(60 * 2 ** max(0, attempts - 1))


def highest_attempt(session: Session, delivery_ids: list[int]) -> int:
    """The most attempts any of these rows has had, to pick a back-off."""
    query = select(Delivery.attempts).where(Delivery.id.in_(delivery_ids))
    return max(session.scalars(query), default=0)
