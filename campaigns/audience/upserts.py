"""Insert or update contacts with their contracts in bulk, with set-based SQL.

The CSV import and the REST API both write through `upsert`. A call costs a handful of
statements whatever its size: one read of the contacts and contracts it touches, one bulk
insert and one bulk update per table, one insert of status changes and of contract terms.

Rules that keep the audience honest:

- A contact is matched by its e-mail address or by its external id (the caller chooses).
  An address or an external id that already belongs to another contact is refused.
- A contract is matched by its external id when it has one, otherwise by (product, plan)
  within its contact: a contact holding two contracts of the same product and plan needs
  contract external ids to tell them apart.
- When an update moves a contract's end date forward, the previous term (start, end, price,
  currency) is kept in `contract_terms` and the term number goes up: that is a renewal.
- An import or a CRM can mark a contact unsubscribed, bounced or complained, but never turn
  such a contact back to active: re-subscribing is a person's decision, made in the admin.
- Custom attributes are merged: keys sent are set, keys sent as null are removed, others stay.
- An item with any refused value is rejected whole; nothing of it is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    Table,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from campaigns.audience.records import FieldError
from campaigns.db import utcnow
from campaigns.models import (
    Contact,
    ContactStatus,
    ContactStatusChange,
    Contract,
    ContractStatus,
    ContractTerm,
)

CHUNK = 5000  # ids per IN list, well under SQLite's bound-parameter limit

CONTACT_DEFAULTS: dict[str, Any] = {
    "first_name": "",
    "last_name": "",
    "locale": "en",
    "time_zone": "UTC",
    "status": ContactStatus.ACTIVE.value,
    "attributes": {},
    "customer_since": None,
    "external_id": None,
}
CONTRACT_DEFAULTS: dict[str, Any] = {
    "external_id": None,
    "plan": "",
    "status": ContractStatus.ACTIVE.value,
    "currency": "EUR",
    "renewal_url": None,
    "service_points": 0,
    "attributes": {},
}
CONTRACT_REQUIRED = ("product", "starts_on", "ends_on")
_CONTACT_COLUMNS = [c for c in Contact.__table__.c if c.name not in ("created_at",)]
_CONTRACT_COLUMNS = [c for c in Contract.__table__.c if c.name not in ("created_at",)]


@dataclass(slots=True)
class Outcome:
    """What happened to one item: its contact, each of its contracts, or why it was refused."""

    contact_id: int | None = None
    contact: str = "rejected"  # created | updated | unchanged | rejected
    contracts: list[tuple[int, str]] = field(default_factory=list)  # created|updated|renewed|…
    errors: list[FieldError] = field(default_factory=list)


@dataclass(slots=True)
class _Plan:
    """The writes one call will make, gathered before any is made."""

    new_contacts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    contact_updates: list[dict[str, Any]] = field(default_factory=list)
    status_changes: list[dict[str, Any]] = field(default_factory=list)
    new_contracts: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    contract_updates: list[dict[str, Any]] = field(default_factory=list)
    terms: list[dict[str, Any]] = field(default_factory=list)


def upsert(
    session: Session,
    items: Sequence[dict[str, Any]],
    *,
    source: str,
    user_id: int | None = None,
    match: str = "email",
) -> list[Outcome]:
    """Write checked contact records (each with optional `contracts`); never commits.

    Returns one Outcome per item, in order. Call it with chunks of a few thousand items.
    """
    if match not in ("email", "external_id"):
        raise ValueError("match must be 'email' or 'external_id'")
    outcomes = [Outcome() for _ in items]
    contacts = _Contacts(_existing_contacts(session, items))
    by_key = contacts.by_email if match == "email" else contacts.by_external
    contracts = _existing_contracts(session, items, list(contacts.ids))
    plan = _Plan()
    seen: dict[str, int] = {}
    now = utcnow()
    for index, item in enumerate(items):
        outcome = outcomes[index]
        key = item.get(match)
        if not key:
            outcome.errors.append(FieldError(f"contact.{match}", "", "is required to match"))
            continue
        if key in seen:
            outcome.errors.append(
                FieldError(f"contact.{match}", str(key), f"appears twice (item {seen[key] + 1})")
            )
            continue
        seen[key] = index
        _plan_contact(plan, outcome, index, item, by_key.get(key), contacts, contracts, now)
    _write(session, plan, outcomes, source=source, user_id=user_id, now=now)
    return outcomes


def _plan_contact(
    plan: _Plan,
    outcome: Outcome,
    index: int,
    item: dict[str, Any],
    row: Row[Any] | None,
    contacts: _Contacts,
    contracts: _Contracts,
    now: Any,
) -> None:
    fields = {k: v for k, v in item.items() if k != "contracts"}
    for name in ("email", "external_id"):
        owner = contacts.owner(name, fields.get(name))
        if owner is not None and (row is None or owner.id != row.id):
            outcome.errors.append(FieldError(
                f"contact.{name}", str(fields[name]), f"already belongs to contact #{owner.id}"
            ))  # fmt: skip
    if row is None and not fields.get("email"):
        outcome.errors.append(FieldError("contact.email", "", "is required for a new contact"))
    planned = _plan_contracts(outcome, item.get("contracts") or [], row, contracts)
    if outcome.errors:
        return
    if row is None:
        record = {**CONTACT_DEFAULTS, **fields}
        plan.new_contacts.append((index, record))
        outcome.contact = "created"
    else:
        changes = _contact_changes(row, fields)
        outcome.contact_id = row.id
        outcome.contact = "updated" if changes else "unchanged"
        if changes:
            plan.contact_updates.append({"id": row.id, **changes, "updated_at": now})
            if "status" in changes:
                plan.status_changes.append({"contact_id": row.id, "status": changes["status"]})
    for contract_row, record in planned:
        if contract_row is None:
            plan.new_contracts.append((index, len(outcome.contracts), record))
            outcome.contracts.append((0, "created"))
            continue
        changes, term = _contract_changes(contract_row, record)
        outcome.contracts.append(
            (contract_row.id, "renewed" if term else "updated" if changes else "unchanged")
        )
        if changes:
            plan.contract_updates.append({"id": contract_row.id, **changes})
        if term:
            plan.terms.append(term)
    touched = any(result != "unchanged" for _, result in outcome.contracts)
    if row is not None and outcome.contact == "unchanged" and touched:
        # A CRM syncing "what changed since" must see a contact whose contracts changed.
        plan.contact_updates.append({"id": row.id, "updated_at": now})


def _plan_contracts(
    outcome: Outcome,
    records: Iterable[dict[str, Any]],
    row: Row[Any] | None,
    contracts: _Contracts,
) -> list[tuple[Row[Any] | None, dict[str, Any]]]:
    planned: list[tuple[Row[Any] | None, dict[str, Any]]] = []
    seen: set[tuple[str, ...]] = set()
    for n, record in enumerate(records):
        where = f"contracts[{n}]"
        key = _contract_key(record)
        if key in seen:
            outcome.errors.append(
                FieldError(f"{where}.external_id", str(key[-1]), "appears twice for this contact")
            )
            continue
        seen.add(key)
        existing = contracts.find(row.id if row is not None else None, record)
        if existing is not None and row is not None and existing.contact_id != row.id:
            outcome.errors.append(FieldError(
                f"{where}.external_id", record["external_id"],
                f"already belongs to contact #{existing.contact_id}",
            ))  # fmt: skip
            continue
        if existing is None:
            missing = [name for name in CONTRACT_REQUIRED if record.get(name) in (None, "")]
            outcome.errors.extend(
                FieldError(f"{where}.{name}", "", "is required for a new contract")
                for name in missing
            )
            record = {**CONTRACT_DEFAULTS, **record}
        starts = record.get("starts_on") or (existing.starts_on if existing else None)
        ends = record.get("ends_on") or (existing.ends_on if existing else None)
        if starts and ends and ends < starts:
            outcome.errors.append(
                FieldError(f"{where}.ends_on", str(ends), f"is before the start {starts}")
            )
        planned.append((existing, record))
    return planned


def _contract_key(record: dict[str, Any]) -> tuple[str, ...]:
    if record.get("external_id"):
        return ("id", record["external_id"])
    return ("product", record.get("product") or "", record.get("plan") or "")


def _contact_changes(row: Row[Any], fields: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "attributes":
            value = _merged(row.attributes, value)
        elif name == "status" and row.status != ContactStatus.ACTIVE and value == "active":
            continue  # only a person in the admin re-subscribes a contact
        if getattr(row, name) != value:
            changes[name] = value
    return changes


def _contract_changes(
    row: Row[Any], record: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    changes: dict[str, Any] = {}
    for name, value in record.items():
        if name == "attributes":
            value = _merged(row.attributes, value)
        if getattr(row, name) != value:
            changes[name] = value
    term = None
    new_end: date | None = changes.get("ends_on")
    if new_end is not None and new_end > row.ends_on:
        term = {
            "contract_id": row.id, "term": row.term, "starts_on": row.starts_on,
            "ends_on": row.ends_on, "price": row.price, "currency": row.currency,
        }  # fmt: skip
        changes["term"] = row.term + 1
        if "status" not in record and row.status == ContractStatus.EXPIRED:
            changes["status"] = ContractStatus.ACTIVE.value
    return changes, term


def _merged(current: dict[str, Any] | None, sent: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current or {})
    for key, value in sent.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class _Contacts:
    """The existing contacts an upsert may touch, by address and by external id."""

    def __init__(self, rows: Iterable[Row[Any]]) -> None:
        self.by_email: dict[str, Row[Any]] = {}
        self.by_external: dict[str, Row[Any]] = {}
        self.ids: set[int] = set()
        for row in rows:
            self.ids.add(row.id)
            self.by_email[row.email] = row
            if row.external_id:
                self.by_external[row.external_id] = row

    def owner(self, name: str, value: Any) -> Row[Any] | None:
        if not value:
            return None
        return (self.by_email if name == "email" else self.by_external).get(value)


def _existing_contacts(session: Session, items: Sequence[dict[str, Any]]) -> list[Row[Any]]:
    """Every contact an item names by address or external id."""
    emails = list({item["email"] for item in items if item.get("email")})
    external = list({item["external_id"] for item in items if item.get("external_id")})
    return _rows_matching(session, _CONTACT_COLUMNS,
                          (Contact.email, emails), (Contact.external_id, external))  # fmt: skip


class _Contracts:
    """The existing contracts an upsert may touch, found by external id or (product, plan)."""

    def __init__(self, rows: Iterable[Row[Any]]) -> None:
        self.by_external: dict[str, Row[Any]] = {}
        self.by_product: dict[tuple[int, str, str], Row[Any]] = {}
        for row in rows:
            if row.external_id:
                self.by_external[row.external_id] = row
            self.by_product.setdefault((row.contact_id, row.product, row.plan), row)

    def find(self, contact_id: int | None, record: dict[str, Any]) -> Row[Any] | None:
        if record.get("external_id"):
            return self.by_external.get(record["external_id"])
        if contact_id is None:
            return None
        key = (contact_id, record.get("product") or "", record.get("plan") or "")
        return self.by_product.get(key)


def _existing_contracts(
    session: Session, items: Sequence[dict[str, Any]], contact_ids: list[int]
) -> _Contracts:
    external = list({
        c["external_id"] for item in items for c in item.get("contracts") or ()
        if c.get("external_id")
    })  # fmt: skip
    return _Contracts(_rows_matching(session, _CONTRACT_COLUMNS, (Contract.contact_id, contact_ids),
                                     (Contract.external_id, external)))  # fmt: skip


def _rows_matching(
    session: Session, columns: list[Any], *keys: tuple[Any, list[Any]]
) -> list[Row[Any]]:
    """The rows whose column holds one of its values, for any of the (column, values) keys,
    read CHUNK values at a time (a row may come twice; callers index rows by key)."""
    rows: list[Row[Any]] = []
    for start in range(0, max(len(values) for _, values in keys), CHUNK):
        chunk = [_among(session, column, values[start : start + CHUNK]) for column, values in keys]
        rows.extend(session.execute(select(*columns).where(or_(*chunk))))
    return rows


def _write(
    session: Session,
    plan: _Plan,
    outcomes: list[Outcome],
    *,
    source: str,
    user_id: int | None,
    now: Any,
) -> None:
    if plan.new_contacts:
        rows = [{**record, "created_at": now, "updated_at": now} for _, record in plan.new_contacts]
        ids = _insert(session, Contact, rows)
        for (index, _), contact_id in zip(plan.new_contacts, ids, strict=True):
            outcomes[index].contact_id = contact_id
    for group in _by_keys(plan.contact_updates):
        session.execute(update(Contact), group)
    if plan.new_contracts:
        rows = []
        for index, _, record in plan.new_contracts:
            rows.append({**record, "contact_id": outcomes[index].contact_id, "created_at": now})
        ids = _insert(session, Contract, rows)
        for (index, position, _), contract_id in zip(plan.new_contracts, ids, strict=True):
            outcomes[index].contracts[position] = (contract_id, "created")
    for group in _by_keys(plan.contract_updates):
        session.execute(update(Contract), group)
    if plan.terms:
        session.execute(
            insert(ContractTerm), [{**t, "source": source, "recorded_at": now} for t in plan.terms]
        )
    if plan.status_changes:
        session.execute(insert(ContactStatusChange), [
            {**change, "source": source, "user_id": user_id, "occurred_at": now,
             "reason": f"set by {source}"}
            for change in plan.status_changes
        ])  # fmt: skip


def _among(session: Session, column: Any, values: list[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL as `= ANY(one array parameter)`, which the driver
    does not have to parse as thousands of placeholders."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(values)
    return column == any_(bindparam(None, values, type_=ARRAY(column.type)))


def _insert(session: Session, model: type[Contact] | type[Contract], rows: list[dict[str, Any]]
            ) -> Sequence[int]:  # fmt: skip
    """Insert rows and return their new ids, in order.

    On PostgreSQL the ids are drawn from the table's sequence first and the rows go in with
    one prepared statement executed many times (psycopg pipelines it): an INSERT … RETURNING
    of thousands of rows is instead sent as huge multi-row statements that the driver parses
    in Python, which was most of an import's time.
    """
    table = cast(Table, model.__table__)
    if session.get_bind().dialect.name != "postgresql":
        return session.scalars(
            insert(model).returning(model.id, sort_by_parameter_order=True), rows
        ).all()
    sequence = func.pg_get_serial_sequence(table.name, "id")
    ids = session.scalars(
        select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows)))
    ).all()
    session.execute(insert(table), [{**row, "id": id_} for row, id_ in zip(rows, ids, strict=True)])
    return ids


def _by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group bulk-update rows by the columns they set: one executemany per shape."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[frozenset(row)].append(row)
    return list(groups.values())
