"""The help desk's API: service points (purchases, refunds, adjustments) and incidents."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from flask import request
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Responses
from sqlalchemy.orm import Session

from campaigns.errors import NotFound
from campaigns.models import Contact, Incident, PointsEntry
from campaigns.service import incidents, points
from campaigns.web.api import MAX_ID, bp, schemas, spec
from campaigns.web.context import unit_of_work

TAGS = ["service"]
_ERRORS = {"HTTP_401": schemas.Problem, "HTTP_403": schemas.Problem}
_WRITE = {**_ERRORS, "HTTP_400": schemas.Problem, "HTTP_404": schemas.Problem,
          "HTTP_409": schemas.Problem, "HTTP_415": schemas.Problem}  # fmt: skip


class PointsIn(BaseModel):
    """A change to a contact's points. `amount` is a number of points: positive, except for
    an adjustment, which is signed (-2 takes two away)."""

    model_config = ConfigDict(extra="forbid")

    contact_id: int = Field(ge=1, le=MAX_ID)
    contract_id: int | None = Field(None, ge=1, le=MAX_ID)
    kind: Literal["grant", "purchase", "refund", "adjust", "use"]
    amount: int = Field(ge=-1_000_000, le=1_000_000)
    reason: str = Field("", max_length=1000, description="required for refunds and adjustments")
    expires_on: date | None = Field(None, description="credits only: unused points expire then")


class PointsEntryOut(BaseModel):
    id: int
    contact_id: int
    contract_id: int | None
    kind: str
    amount: int = Field(description="signed: what the entry did to the balance")
    balance_after: int
    reason: str
    source: str
    campaign_id: int | None
    incident_id: int | None
    expires_on: date | None
    occurred_at: datetime


class PointsOut(BaseModel):
    entry: PointsEntryOut
    balance: int


class PointsHistory(BaseModel):
    balance: int
    entries: list[PointsEntryOut] = Field(description="newest first, at most 200")


class IncidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: int = Field(ge=1, le=MAX_ID)
    contract_id: int | None = Field(None, ge=1, le=MAX_ID)
    channel: Literal["email", "phone"]
    chargeable: bool = False
    points_used: int = Field(0, ge=0, le=1_000_000, description="taken from the balance")
    summary: str = Field("", max_length=2000)
    opened_at: datetime | None = Field(None, description="ISO 8601 (no zone: UTC); default now")
    closed_at: datetime | None = None


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    closed_at: datetime | None = Field(None, description="default now")


class IncidentOut(BaseModel):
    id: int
    contact_id: int
    contract_id: int | None
    channel: str
    chargeable: bool
    points_used: int
    summary: str
    opened_at: datetime
    closed_at: datetime | None


class IncidentList(BaseModel):
    data: list[IncidentOut]


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def entry_out(e: PointsEntry) -> dict[str, Any]:
    return {name: getattr(e, name) for name in PointsEntryOut.model_fields} | {
        "kind": str(e.kind)}  # fmt: skip


def incident_out(i: Incident) -> dict[str, Any]:
    return {name: getattr(i, name) for name in IncidentOut.model_fields} | {
        "channel": str(i.channel)}  # fmt: skip


@bp.post("/points")
@spec.validate(json=PointsIn, headers=schemas.IdempotencyHeaders, tags=TAGS,
               resp=Responses(HTTP_200=PointsOut, HTTP_201=PointsOut, **_WRITE))  # fmt: skip
def change_points() -> Any:
    """Add an entry to a contact's points ledger, once per `Idempotency-Key`.

    Purchases (a package), refunds ("it was our fault"), grants, uses and adjustments; the
    balance is the sum of the entries. A use that would take the balance below 0 is 409
    and nothing is written; so is a key already used for another change.
    """
    body: PointsIn = request.context.json  # type: ignore[attr-defined]
    headers: schemas.IdempotencyHeaders = request.context.headers  # type: ignore[attr-defined]
    with unit_of_work() as s:
        made = points.record(
            s, body.contact_id, body.kind, body.amount, source="api", reason=body.reason,
            idempotency_key=headers.idempotency_key, expires_on=body.expires_on,
            contract_id=body.contract_id,
        )  # fmt: skip
        answer = {"entry": entry_out(made.entry), "balance": points.balance(s, body.contact_id)}
    return answer, 201 if made.created else 200


@bp.get("/contacts/<int:contact_id>/points")
@spec.validate(resp=Responses(HTTP_200=PointsHistory, HTTP_404=schemas.Problem, **_ERRORS),
               tags=TAGS)  # fmt: skip
def points_of(contact_id: int) -> Any:
    """A contact's points balance and its history, newest first."""
    with unit_of_work() as s:
        _contact(s, contact_id)
        return {"balance": points.balance(s, contact_id),
                "entries": [entry_out(e) for e in points.history(s, contact_id)]}  # fmt: skip


@bp.post("/incidents")
@spec.validate(json=IncidentIn, headers=schemas.IdempotencyHeaders,
               resp=Responses(HTTP_200=IncidentOut, HTTP_201=IncidentOut, HTTP_422=schemas.Problem,
                              **_WRITE), tags=TAGS)  # fmt: skip
def record_incident() -> Any:
    """Record a support incident, once per `Idempotency-Key`.

    `points_used` are taken from the contact's balance in the same step: with too few
    points the answer is 409 and neither the incident nor the use is written.
    """
    body: IncidentIn = request.context.json  # type: ignore[attr-defined]
    headers: schemas.IdempotencyHeaders = request.context.headers  # type: ignore[attr-defined]
    with unit_of_work() as s:
        made = incidents.record(
            s, contact_id=body.contact_id, contract_id=body.contract_id, channel=body.channel,
            chargeable=body.chargeable, points_used=body.points_used, summary=body.summary,
            opened_at=_utc(body.opened_at), closed_at=_utc(body.closed_at),
            idempotency_key=headers.idempotency_key,
        )  # fmt: skip
        answer = incident_out(made.incident)
    return answer, 201 if made.created else 200


@bp.post("/incidents/<int:incident_id>/close")
@spec.validate(json=CloseIn, resp=Responses(HTTP_200=IncidentOut, HTTP_422=schemas.Problem,
                                            **_WRITE), tags=TAGS)  # fmt: skip
def close_incident(incident_id: int) -> Any:
    """Close an incident (closing it again keeps the first time)."""
    body: CloseIn = request.context.json  # type: ignore[attr-defined]
    with unit_of_work() as s:
        return incident_out(incidents.close(s, incident_id, closed_at=_utc(body.closed_at)))


@bp.get("/contacts/<int:contact_id>/incidents")
@spec.validate(resp=Responses(HTTP_200=IncidentList, HTTP_404=schemas.Problem, **_ERRORS),
               tags=TAGS)  # fmt: skip
def incidents_of(contact_id: int) -> Any:
    """A contact's incidents, newest first."""
    with unit_of_work() as s:
        _contact(s, contact_id)
        return {"data": [incident_out(i) for i in incidents.of_contact(s, contact_id)]}


def _contact(s: Session, contact_id: int) -> None:
    if s.get(Contact, contact_id) is None:
        raise NotFound(f"there is no contact #{contact_id}")
