"""Contacts and their contracts: upsert one or in bulk, read, list with a cursor, erase."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC
from typing import Any

from flask import g, request
from spectree import Response as Responses
from sqlalchemy.orm import Session

from campaigns.audience import erasure, queries
from campaigns.audience.records import FieldError
from campaigns.models import Contact, ContactStatus, Contract, ContractTerm
from campaigns.web.api import bp, problems, schemas, spec
from campaigns.web.api.items import upsert_items
from campaigns.web.context import unit_of_work

TAGS = ["contacts"]
_ERRORS = {"HTTP_401": schemas.Problem, "HTTP_403": schemas.Problem}
_WRITE_ERRORS = {**_ERRORS, "HTTP_400": schemas.Problem, "HTTP_415": schemas.Problem}
CONTACT_ID = "int:contact_id"
CONTRACT_ID = "int:contract_id"


@bp.post("/contacts")
@spec.validate(
    query=schemas.UpsertQuery,
    json=schemas.ContactIn,
    resp=Responses(HTTP_200=schemas.UpsertOut, HTTP_201=schemas.UpsertOut, **_WRITE_ERRORS),
    tags=TAGS,
)
def upsert_contact() -> Any:
    """Create or update a contact and its contracts.

    The contact is found by `email` (or by `external_id` with `?match=external_id`); fields
    left out are left alone. Contracts are found by their `external_id`, else by product
    and plan. An end date moved forward is a renewal: the past term is kept. Answers 201
    when the contact is new, 200 otherwise, and 422 naming every refused field.
    """
    query: schemas.UpsertQuery = request.context.query  # type: ignore[attr-defined]
    body: schemas.ContactIn = request.context.json  # type: ignore[attr-defined]
    with unit_of_work() as s:
        (outcome,) = upsert_items(s, [body.model_dump(exclude_unset=True)], match=query.match,
                                  user_id=g.api_caller.user_id, places=[""])  # fmt: skip
        if outcome.errors or outcome.contact_id is None:
            raise problems.refused(outcome.errors)
        answer = {
            "outcome": outcome.contact,
            "contracts": [{"id": i, "outcome": o} for i, o in outcome.contracts],
            "contact": contact_detail(s, outcome.contact_id),
        }
    return answer, 201 if outcome.contact == "created" else 200


@bp.post("/contacts/bulk")
@spec.validate(
    json=schemas.BulkIn,
    resp=Responses(HTTP_200=schemas.BulkOut, HTTP_413=schemas.Problem, **_WRITE_ERRORS),
    tags=TAGS,
)
def upsert_contacts() -> Any:
    """Create or update up to 10,000 contacts with their contracts, each on its own.

    Each item is written or refused whole; the answer lists, in order, what happened to
    each (created, updated, unchanged or rejected, with the refused fields named like
    `contacts[3].contracts[0].ends_on`). The valid items are written even when others are
    refused. Sending the same items again changes nothing (all `unchanged`).
    """
    body: schemas.BulkIn = request.context.json  # type: ignore[attr-defined]
    raw = body.model_dump(exclude_unset=True)["contacts"]  # one call: far faster than per item
    places = [f"contacts[{i}]." for i in range(len(raw))]
    with unit_of_work() as s:
        outcomes = upsert_items(s, raw, match=body.match, user_id=g.api_caller.user_id,
                                places=places)  # fmt: skip
    counts = dict.fromkeys(("created", "updated", "unchanged", "rejected"), 0)
    results = []
    for index, outcome in enumerate(outcomes):
        counts[outcome.contact] += 1
        results.append({
            "index": index,
            "contact_id": outcome.contact_id,
            "outcome": outcome.contact,
            "contracts": [{"id": i, "outcome": o} for i, o in outcome.contracts],
            "errors": [{"field": e.field, "value": e.value, "reason": e.reason}
                       for e in outcome.errors],
        })  # fmt: skip
    return {"counts": counts, "results": results}


@bp.get("/contacts")
@spec.validate(
    query=schemas.ListQuery,
    resp=Responses(HTTP_200=schemas.ContactPage, HTTP_400=schemas.Problem, **_ERRORS),
    tags=TAGS,
)
def list_contacts() -> Any:
    """List contacts, oldest first, a page at a time.

    Filters: `status`, `email_contains`, `updated_since`, `external_id`. Pass the page's
    `next_cursor` as `cursor` to get the next page; it is null on the last one. Contacts
    added while you page appear at the end, never twice; erased contacts never appear.
    """
    query: schemas.ListQuery = request.context.query  # type: ignore[attr-defined]
    since = query.updated_since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    filters = queries.ContactFilter(
        status=ContactStatus(query.status) if query.status else None,
        email_contains=query.email_contains,
        updated_since=since,
        external_id=query.external_id,
    )
    after = _after_id(query.cursor)
    with unit_of_work() as s:
        rows, next_after = queries.page_of_contacts(s, filters, after_id=after, limit=query.limit)
        data = [contact_out(c) for c in rows]
    return {"data": data, "next_cursor": _cursor(next_after) if next_after else None}


@bp.get(f"/contacts/<{CONTACT_ID}>")
@spec.validate(
    resp=Responses(HTTP_200=schemas.ContactDetail, HTTP_404=schemas.Problem, **_ERRORS),
    tags=TAGS,
)
def get_contact(contact_id: int) -> Any:
    """Read a contact with its contracts and each contract's past terms."""
    with unit_of_work() as s:
        return contact_detail(s, contact_id)


@bp.delete(f"/contacts/<{CONTACT_ID}>")
@spec.validate(resp=Responses(HTTP_204=None, HTTP_404=schemas.Problem, **_ERRORS), tags=TAGS)
def erase_contact(contact_id: int) -> Any:
    """Erase a contact (GDPR): its personal data is removed for good.

    The address becomes a placeholder no one can receive, names, attributes and external
    ids are cleared (the contracts' too), and the contact is never listed or mailed again.
    Its ledger rows stay, without the address, so campaign figures do not change. Erasing
    an erased contact again answers 204 as well.
    """
    with unit_of_work() as s:
        erasure.erase_contact(s, contact_id)
    return "", 204


@bp.get(f"/contacts/<{CONTACT_ID}>/contracts")
@spec.validate(
    resp=Responses(HTTP_200=schemas.ContractList, HTTP_404=schemas.Problem, **_ERRORS),
    tags=TAGS,
)
def list_contracts(contact_id: int) -> Any:
    """List a contact's contracts with their past terms."""
    with unit_of_work() as s:
        view = queries.get_contact(s, contact_id)
        return {"data": [contract_out(c, view.terms.get(c.id, [])) for c in _ordered(view)]}


@bp.post(f"/contacts/<{CONTACT_ID}>/contracts")
@spec.validate(
    json=schemas.ContractIn,
    resp=Responses(
        HTTP_200=schemas.ContractUpsertOut,
        HTTP_201=schemas.ContractUpsertOut,
        HTTP_404=schemas.Problem,
        **_WRITE_ERRORS,
    ),  # fmt: skip
    tags=TAGS,
)
def upsert_contract(contact_id: int) -> Any:
    """Create or update one contract of a contact.

    Found by `external_id`, else by product and plan within the contact. Moving `ends_on`
    forward renews it (the past term is kept, `term` goes up). 201 when new, else 200.
    """
    body: schemas.ContractIn = request.context.json  # type: ignore[attr-defined]
    with unit_of_work() as s:
        email = queries.get_contact(s, contact_id).contact.email
        item = {"email": email, "contracts": [body.model_dump(exclude_unset=True)]}
        (outcome,) = upsert_items(s, [item], match="email", user_id=g.api_caller.user_id,
                                  places=[""])  # fmt: skip
        if outcome.errors:
            raise problems.refused([_unplaced(e) for e in outcome.errors])
        contract_id, result = outcome.contracts[0]
        contract = queries.get_contract(s, contact_id, contract_id)
        answer = {"outcome": result,
                  "contract": contract_out(contract, queries.terms_of(s, [contract_id]).get(
                      contract_id, []))}  # fmt: skip
    return answer, 201 if result == "created" else 200


@bp.get(f"/contacts/<{CONTACT_ID}>/contracts/<{CONTRACT_ID}>")
@spec.validate(
    resp=Responses(HTTP_200=schemas.ContractOut, HTTP_404=schemas.Problem, **_ERRORS),
    tags=TAGS,
)
def get_contract(contact_id: int, contract_id: int) -> Any:
    """Read one contract of a contact with its past terms."""
    with unit_of_work() as s:
        contract = queries.get_contract(s, contact_id, contract_id)
        return contract_out(contract, queries.terms_of(s, [contract_id]).get(contract_id, []))


# Representations ----------------------------------------------------------------------


def contact_out(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "email": contact.email,
        "external_id": contact.external_id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "locale": contact.locale,
        "time_zone": contact.time_zone,
        "status": contact.status,
        "customer_since": contact.customer_since.isoformat() if contact.customer_since else None,
        "lifetime_spend": f"{contact.lifetime_spend:.2f}",
        "attributes": contact.attributes or {},
        "created_at": contact.created_at.isoformat(),
        "updated_at": contact.updated_at.isoformat(),
    }


def contact_detail(session: Session, contact_id: int) -> dict[str, Any]:
    view = queries.get_contact(session, contact_id)
    contracts = [contract_out(c, view.terms.get(c.id, [])) for c in _ordered(view)]
    return {**contact_out(view.contact), "contracts": contracts}


def contract_out(contract: Contract, terms: list[ContractTerm]) -> dict[str, Any]:
    return {
        "id": contract.id,
        "contact_id": contract.contact_id,
        "external_id": contract.external_id,
        "product": contract.product,
        "plan": contract.plan,
        "starts_on": contract.starts_on.isoformat(),
        "ends_on": contract.ends_on.isoformat(),
        "term": contract.term,
        "status": contract.status,
        "price": f"{contract.price:.2f}",
        "currency": contract.currency,
        "renewal_url": contract.renewal_url,
        "service_points": contract.service_points,
        "attributes": contract.attributes or {},
        "created_at": contract.created_at.isoformat(),
        "terms": [
            {"term": t.term, "starts_on": t.starts_on.isoformat(), "ends_on": t.ends_on.isoformat(),
             "price": f"{t.price:.2f}", "currency": t.currency,
             "recorded_at": t.recorded_at.isoformat()}
            for t in terms
        ],
    }  # fmt: skip


def _ordered(view: queries.ContactView) -> list[Contract]:
    return sorted(view.contact.contracts, key=lambda c: c.id)


# Cursors are opaque to clients: the last id seen, versioned, in URL-safe base64.
def _cursor(after_id: int) -> str:
    return base64.urlsafe_b64encode(f"c1:{after_id}".encode()).decode().rstrip("=")


def _after_id(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, value = text.partition(":")
        if version != "c1" or not value.isdigit():
            raise ValueError(cursor)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise problems.Problem(
            400,
            "the cursor was not given by this API; start again without one",
            errors=[FieldError("cursor", cursor, "is not a cursor this API gave")],
        ) from None


def _unplaced(error: FieldError) -> FieldError:
    field = error.field.removeprefix("contracts[0].")
    return FieldError(field, error.value, error.reason)
