"""What each webhook says: its JSON, built in SQL from the events and conversions it is about.

`collect` (campaigns.tracking.webhooks) inserts these SELECTs into the webhook ledger, so a
thousand new events cost one statement, not a thousand. SQLite's `json_object` and
PostgreSQL's `jsonb_build_object` take the same alternating keys and values; the few
things that differ (times, amounts, embedding a JSON column) are spelled per dialect here.
Times are ISO 8601 in UTC to the millisecond, amounts strings with two decimals ("480.00":
no binary floating point for money).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, case, cast, false, func, literal, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

from campaigns.db import UTCDateTime
from campaigns.models import (
    Contact,
    Contract,
    Conversion,
    Delivery,
    Event,
    EventKind,
    SurveyResponse,
    SurveyScale,
    WebhookState,
    WebhookType,
)

EVENT_TYPES = {
    EventKind.RENEWAL_CLICK: WebhookType.RENEWAL_CLICKED,
    EventKind.ACKNOWLEDGMENT: WebhookType.LETTER_ACKNOWLEDGED,
    EventKind.UNSUBSCRIBE: WebhookType.CONTACT_UNSUBSCRIBED,
    EventKind.BOUNCE: WebhookType.LETTER_BOUNCED,
    EventKind.COMPLAINT: WebhookType.LETTER_COMPLAINED,
}

# The webhook ledger's columns the SELECTs below fill, in their order.
COLUMNS = ["subscription_id", "event_key", "type", "payload", "state", "attempts",
           "next_attempt_at", "last_error", "created_at"]  # fmt: skip


def _constant(value: str) -> ColumnElement[str]:
    # A literal in the SQL, not a parameter: PostgreSQL cannot type a parameter handed to
    # jsonb_build_object's variadic "any". Only this module's own constants come here.
    if "'" in value:
        raise ValueError(f"not a constant: {value!r}")
    return literal_column(f"'{value}'", String)


class Json:
    """JSON built in SQL, on SQLite or PostgreSQL."""

    def __init__(self, dialect: str) -> None:
        self.postgresql = dialect == "postgresql"

    def object(self, **values: Any) -> ColumnElement[Any]:
        """A JSON object of these keys and SQL values (SQL NULL becomes null)."""
        args: list[Any] = []
        for key, value in values.items():
            args += [_constant(key), value]
        builder = func.jsonb_build_object if self.postgresql else func.json_object
        return builder(*args)

    def time(self, column: Any) -> ColumnElement[str]:
        """A timestamp as `2026-11-24T04:09:33.309Z`."""
        if self.postgresql:
            utc = func.timezone(_constant("UTC"), column)
            return func.to_char(utc, _constant('YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
        return func.strftime(_constant("%Y-%m-%dT%H:%M:%fZ"), column)

    def money(self, column: Any) -> ColumnElement[str]:
        """An amount as a string with two decimals."""
        if self.postgresql:
            return func.to_char(column, _constant("FM999999999990.00"))
        return func.printf(_constant("%.2f"), column)

    def embedded(self, column: Any) -> ColumnElement[Any]:
        """A JSON column's value as a nested object (SQLite would quote it as a string)."""
        return column if self.postgresql else func.json(column)


def _row(subscription_id: int, key: Any, type_: Any, payload: Any, now: datetime) -> list[Any]:
    """The values of COLUMNS for a new pending webhook."""
    return [literal(subscription_id), key, type_, payload, _constant(WebhookState.PENDING.value),
            literal(0), literal(now, UTCDateTime()), _constant(""),
            literal(now, UTCDateTime())]  # fmt: skip


def events(
    dialect: str, subscription_id: int, kinds: list[EventKind], *, since: datetime,
    until: datetime, now: datetime,
) -> Select[Any]:  # fmt: skip
    """Webhooks for the events of these kinds that occurred in [since, until); renewal
    clicks only where a person (not a scanner or proxy) clicked."""
    json = Json(dialect)
    key = _constant("event:").concat(cast(Event.id, String(20)))
    type_ = case(*((Event.kind == kind.value, _constant(EVENT_TYPES[kind].value))
                   for kind in kinds), else_=_constant(""))  # fmt: skip
    # A renewal click names the contract it was for: a letter may name several.
    contract_id = func.coalesce(Event.detail["contract_id"].as_integer(), Delivery.contract_id)
    data = json.object(
        contact_id=Event.contact_id, email=Contact.email, contract_id=contract_id,
        delivery_id=Event.delivery_id, campaign_id=Delivery.campaign_id,
        automation_step_id=Delivery.automation_step_id, detail=json.embedded(Event.detail),
    )  # fmt: skip
    payload = json.object(id=key, type=type_, occurred_at=json.time(Event.occurred_at), data=data)
    return (
        select(*_row(subscription_id, key, type_, payload, now))
        .select_from(Event)
        .join(Contact, Contact.id == Event.contact_id)
        .outerjoin(Delivery, Delivery.id == Event.delivery_id)
        .where(
            Event.kind.in_([kind.value for kind in kinds]),
            Event.occurred_at >= since,
            Event.occurred_at < until,
            or_(Event.kind != EventKind.RENEWAL_CLICK.value, Event.is_machine == false()),
        )
    )


def conversions(
    dialect: str, subscription_id: int, *, since: datetime, until: datetime, now: datetime
) -> Select[Any]:
    """Webhooks for the conversions recorded in [since, until); `delivery_id` and the
    campaign or step are null for an organic renewal (no letter earned it)."""
    json = Json(dialect)
    key = _constant("conversion:").concat(cast(Conversion.id, String(20)))
    type_ = _constant(WebhookType.CONVERSION_RECORDED.value)
    data = json.object(
        contact_id=Contract.contact_id, email=Contact.email, contract_id=Conversion.contract_id,
        term=Conversion.term, delivery_id=Conversion.delivery_id,
        campaign_id=Delivery.campaign_id, automation_step_id=Delivery.automation_step_id,
        amount=json.money(Conversion.amount), currency=Conversion.currency,
        source=Conversion.source,
    )  # fmt: skip
    payload = json.object(
        id=key, type=type_, occurred_at=json.time(Conversion.occurred_at), data=data
    )
    return (
        select(*_row(subscription_id, key, type_, payload, now))
        .select_from(Conversion)
        .join(Contract, Contract.id == Conversion.contract_id)
        .join(Contact, Contact.id == Contract.contact_id)
        .outerjoin(Delivery, Delivery.id == Conversion.delivery_id)
        .where(Conversion.recorded_at >= since, Conversion.recorded_at < until)
    )


def detractors(
    dialect: str, subscription_id: int, *, since: datetime, until: datetime, now: datetime
) -> Select[Any]:
    """Webhooks for the survey responses that became detractors (CSAT 1–2, NPS 0–6) in
    [since, until) and still are; the score and comment as they stand now."""
    json, r = Json(dialect), SurveyResponse
    key = _constant("survey:").concat(cast(r.id, String(20)))
    type_ = _constant(WebhookType.SURVEY_DETRACTOR.value)
    data = json.object(
        contact_id=r.contact_id, email=Contact.email, delivery_id=r.delivery_id,
        campaign_id=Delivery.campaign_id, automation_step_id=Delivery.automation_step_id,
        scale=r.scale, score=r.score, comment=r.comment,
        responded_at=json.time(r.responded_at),
    )  # fmt: skip
    payload = json.object(id=key, type=type_, occurred_at=json.time(r.detractor_at), data=data)
    unhappy = or_((r.scale == SurveyScale.CSAT.value) & (r.score <= 2),
                  (r.scale == SurveyScale.NPS.value) & (r.score <= 6))  # fmt: skip
    return (
        select(*_row(subscription_id, key, type_, payload, now))
        .select_from(r)
        .join(Contact, Contact.id == r.contact_id)
        .join(Delivery, Delivery.id == r.delivery_id)
        .where(r.detractor_at >= since, r.detractor_at < until, unhappy)
    )


def ping(subscription_id: int, key: str, *, now: datetime) -> dict[str, Any]:
    """The payload of a test an admin sends."""
    return {"id": key, "type": WebhookType.PING.value,
            "occurred_at": now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "data": {"subscription_id": subscription_id}}  # fmt: skip
