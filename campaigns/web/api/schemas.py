"""Request and response shapes of API v1 (pydantic), from which the OpenAPI document is made.

Request models check the envelope only — an object, lists where lists belong, no unknown
field names, at most 10,000 contacts. Field values are documented here (format, example)
but accepted as sent and checked by `campaigns.audience.records`, the one place that says
what a valid date, address or currency is, for the CSV import and the API alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

MAX_BULK = 10_000


def _checked(schema: dict[str, Any]) -> WithJsonSchema:
    """What the document says of a field whose value records.py checks."""
    return WithJsonSchema(schema)


Text100 = Annotated[Any, _checked({"type": "string", "maxLength": 100})]
OptionalId = Annotated[Any, _checked({"type": ["string", "null"], "maxLength": 100})]
Product = Annotated[Any, _checked({"type": "string", "minLength": 1, "maxLength": 255})]
Day = Annotated[Any, _checked({"type": "string", "format": "date", "example": "2026-12-31"})]
OptionalDay = Annotated[Any, _checked({"type": ["string", "null"], "format": "date"})]
Amount = Annotated[Any, _checked({
    "type": ["number", "string"], "example": "1250.00",
    "description": "0 to 9999999999.99; a string keeps the cents exact",
})]  # fmt: skip
Currency = Annotated[Any, _checked({"type": "string", "pattern": "^[A-Z]{3}$", "example": "EUR"})]
Url = Annotated[Any, _checked({"type": ["string", "null"], "format": "uri",
                               "example": "https://shop.example.com/renew/42"})]  # fmt: skip
Points = Annotated[Any, _checked({"type": "integer", "minimum": 0, "maximum": 1_000_000})]
Email = Annotated[Any, _checked({"type": "string", "format": "email", "maxLength": 320})]
Locale = Annotated[Any, _checked({"type": "string", "example": "de"})]
TimeZone = Annotated[Any, _checked({"type": "string", "example": "Europe/Berlin"})]
Attributes = Annotated[Any, _checked({
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    "description": "custom attributes, merged: a name sent as null is removed",
})]  # fmt: skip
ContactStatusIn = Annotated[Any, _checked(
    {"type": "string", "enum": ["active", "unsubscribed", "bounced", "complained"]}
)]  # fmt: skip
ContractStatusIn = Annotated[Any, _checked(
    {"type": "string", "enum": ["active", "expired", "cancelled"]}
)]  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContractIn(_Strict):
    """A contract to create or update; matched by external_id, else by product and plan."""

    external_id: OptionalId = None
    product: Product = None
    plan: Text100 = None
    starts_on: Day = None
    ends_on: Day = None
    status: ContractStatusIn = None
    price: Amount = None
    currency: Currency = None
    renewal_url: Url = None
    service_points: Points = None
    attributes: Attributes = None


class ContactIn(_Strict):
    """A contact to create or update, with contracts to create or update (fields left out
    are left alone)."""

    email: Email = None
    external_id: OptionalId = None
    first_name: Text100 = None
    last_name: Text100 = None
    locale: Locale = None
    time_zone: TimeZone = None
    status: ContactStatusIn = None
    customer_since: OptionalDay = None
    lifetime_spend: Amount = None
    attributes: Attributes = None
    contracts: list[ContractIn] | None = None


Match = Literal["email", "external_id"]


class UpsertQuery(_Strict):
    match: Match = Field("email", description="which field finds an existing contact")


class BulkIn(_Strict):
    """Up to 10,000 contacts; each is written or refused on its own."""

    match: Match = Field("email", description="which field finds an existing contact")
    contacts: list[ContactIn] = Field(min_length=1, max_length=MAX_BULK)


class ListQuery(_Strict):
    status: Literal["active", "unsubscribed", "bounced", "complained"] | None = None
    email_contains: str | None = Field(None, max_length=320)
    updated_since: datetime | None = Field(
        None, description="ISO 8601; without a zone it is read as UTC"
    )
    external_id: str | None = Field(None, max_length=100)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the last page")
    limit: int = Field(100, ge=1, le=1000)


class IdempotencyHeaders(BaseModel):
    """The header that makes a write safe to send again."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    idempotency_key: str = Field(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="your id of this write (an order or ticket number); a replay records "
        "nothing new and answers with the first record",
    )  # fmt: skip


# Responses -----------------------------------------------------------------------------

Money = Annotated[str, Field(pattern=r"^\d+\.\d{2}$", examples=["1250.00"])]


class FieldProblem(BaseModel):
    field: str = Field(examples=["contacts[3].contracts[0].ends_on"])
    value: str
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem detail (served as application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


class TermOut(BaseModel):
    term: int
    starts_on: str = Field(json_schema_extra={"format": "date"})
    ends_on: str = Field(json_schema_extra={"format": "date"})
    price: Money
    currency: str
    recorded_at: datetime


class ContractOut(BaseModel):
    id: int
    contact_id: int
    external_id: str | None
    product: str
    plan: str
    starts_on: str = Field(json_schema_extra={"format": "date"})
    ends_on: str = Field(json_schema_extra={"format": "date"})
    term: int = Field(description="1 for the first term; raised by each renewal")
    status: str
    price: Money
    currency: str
    renewal_url: str | None
    service_points: int
    attributes: dict[str, Any]
    created_at: datetime
    terms: list[TermOut] = Field(description="past terms, oldest first")


class ContactOut(BaseModel):
    id: int
    email: str
    external_id: str | None
    first_name: str
    last_name: str
    locale: str
    time_zone: str
    status: str
    customer_since: str | None = Field(json_schema_extra={"format": "date"})
    lifetime_spend: Money
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ContactDetail(ContactOut):
    contracts: list[ContractOut]


class ContactPage(BaseModel):
    data: list[ContactOut]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class ContractList(BaseModel):
    data: list[ContractOut]


ContactOutcome = Literal["created", "updated", "unchanged", "rejected"]
ContractOutcome = Literal["created", "updated", "renewed", "unchanged"]


class ContractResult(BaseModel):
    id: int
    outcome: ContractOutcome


class UpsertOut(BaseModel):
    outcome: Literal["created", "updated", "unchanged"]
    contracts: list[ContractResult]
    contact: ContactDetail


class ContractUpsertOut(BaseModel):
    outcome: ContractOutcome
    contract: ContractOut


class ItemResult(BaseModel):
    index: int = Field(description="position of the item in `contacts`, from 0")
    contact_id: int | None
    outcome: ContactOutcome
    contracts: list[ContractResult]
    errors: list[FieldProblem]


class BulkOut(BaseModel):
    counts: dict[ContactOutcome, int]
    results: list[ItemResult]
