"""Insert or update contacts with their contracts in bulk, with set-based SQL.

The CSV import and the REST API both write through here. A `Batch` stages its rows in a
temporary table (streamed with `COPY` on PostgreSQL), then `merge` matches, checks and writes
them all with a fixed handful of statements, whatever the batch's size; `upsert` is the same
for a list of items (the API's way). Each staged row carries at most one contract; the first
row of an item (its head) carries the contact's fields.

Rules that keep the audience honest:

- A contact is matched by its e-mail address or by its external id (the caller chooses).
  An address or an external id that already belongs to another contact is refused.
- A contract is matched by its external id when it has one, otherwise by (product, plan)
  within its contact: a contact holding two contracts of the same product and plan needs
  contract external ids to tell them apart. A contract external id that already belongs to
  another contact is refused.
- When an update moves a contract's end date forward, the previous term (start, end, price,
  currency) is kept in `contract_terms` and the term number goes up: that is a renewal.
- An import or a CRM can mark a contact unsubscribed, bounced or complained, but never turn
  such a contact back to active: re-subscribing is a person's decision, made in the admin.
- Custom attributes are merged: keys sent are set, keys sent as null are removed, others stay.
- A field left out of a record is left alone; one sent as null (where null is allowed) is
  cleared.
- An item with any refused value is rejected whole; nothing of it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTable

from campaigns.audience import records
from campaigns.audience.records import FieldError
from campaigns.db import JSONType, UTCDateTime, utcnow
from campaigns.models import (
    Contact,
    ContactStatus,
    ContactStatusChange,
    Contract,
    ContractStatus,
    ContractTerm,
)

CONTACT_DEFAULTS: dict[str, Any] = {
    "first_name": "",
    "last_name": "",
    "locale": "en",
    "time_zone": "UTC",
    "status": ContactStatus.ACTIVE.value,
    "attributes": {},
    "customer_since": None,
    "external_id": None,
    "lifetime_spend": Decimal("0"),
}
CONTRACT_DEFAULTS: dict[str, Any] = {
    "external_id": None,
    "plan": "",
    "status": ContractStatus.ACTIVE.value,
    "price": Decimal("0"),
    "currency": "EUR",
    "renewal_url": None,
    "service_points": 0,
    "attributes": {},
}
CONTRACT_REQUIRED = ("product", "starts_on", "ends_on")
CONTACT_FIELDS = tuple(records.CONTACT_FIELDS)  # staged in this order, attributes last
CONTRACT_FIELDS = tuple(records.CONTRACT_FIELDS)
# Fields a record may set to null (clearing them); the others are only ever given or left out.
NULLABLE = {"external_id", "customer_since", "renewal_url"}

_meta = MetaData()


def _staged(prefix: str, model: type[Contact] | type[Contract], names: Sequence[str]
            ) -> list[Column[Any]]:  # fmt: skip
    table = cast(Table, model.__table__)
    return [Column(prefix + name, table.c[name].type) for name in names]


# One row per staged row: item, its line (or place), the contract's position in the item (none
# when the row has no contract), the contact's key; the head's contact fields; the contract's
# fields with a `contract_` prefix; then what the merge found.
STAGE = Table(
    "upsert_stage", _meta,
    Column("item", Integer, nullable=False),
    Column("line", Integer, nullable=False),
    Column("n", Integer),
    Column("head", Boolean, nullable=False),
    Column("key", String(320)),
    *_staged("", Contact, CONTACT_FIELDS),
    Column("nulls", Integer, nullable=False),  # bit i: CONTACT_FIELDS[i] was sent as null
    *_staged("contract_", Contract, CONTRACT_FIELDS),
    Column("contract_nulls", Integer, nullable=False),
    Column("contact_id", Integer),
    Column("contract_id", Integer),
    Column("contract_owner", Integer),
    Column("contact_outcome", String(20)),
    Column("contract_outcome", String(20)),
    Column("old_status", String(20)),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)  # fmt: skip
INPUT = [c.name for c in STAGE.c][: 5 + len(CONTACT_FIELDS) + 1 + len(CONTRACT_FIELDS) + 1]
ERRORS = Table(
    "upsert_errors", _meta,
    Column("seq", Integer, primary_key=True),
    Column("item", Integer, nullable=False),
    Column("n", Integer),  # the contract's position, or none for the contact's fields
    Column("field", String(50), nullable=False),
    Column("value", String),
    Column("reason", String, nullable=False),
    Column("fatal", Boolean, nullable=False),  # the item cannot be matched: nothing more checked
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)  # fmt: skip
_NO_CONTACT = (None,) * len(CONTACT_FIELDS)
_NO_CONTRACT = (None,) * len(CONTRACT_FIELDS)
SQLITE_ROWS = 2000  # staged rows per executemany on SQLite


@dataclass(slots=True)
class Outcome:
    """What happened to one item: its contact, each of its contracts, or why it was refused."""

    contact_id: int | None = None
    contact: str = "rejected"  # created | updated | unchanged | rejected
    contracts: list[tuple[int, str]] = field(default_factory=list)  # created|updated|renewed|…
    errors: list[FieldError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused value of a staged item: `n` is its contract's position (None: the contact)."""

    item: int
    n: int | None
    field: str
    value: str
    reason: str


def stage_row(item: int, line: int, n: int | None, key: str | None, contact: dict[str, Any] | None,
              contract: dict[str, Any] | None) -> tuple[Any, ...]:  # fmt: skip
    """One staged row from checked records (`contact` on the item's head row only)."""
    lists: list[list[Any] | None] = []
    masks: list[int] = []
    for record, names in ((contact, CONTACT_FIELDS), (contract, CONTRACT_FIELDS)):
        values = None if record is None else [record.get(name) for name in names]
        nulls = 0
        for bit, name in enumerate(names):
            if record is not None and name in record and record[name] is None:
                nulls |= 1 << bit
        lists.append(values)
        masks.append(nulls)
    return stage_values(item, line, n, key, lists[0], lists[1], *masks)


def stage_values(item: int, line: int, n: int | None, key: str | None,
                 contact: list[Any] | None, contract: list[Any] | None,
                 nulls: int = 0, contract_nulls: int = 0) -> tuple[Any, ...]:  # fmt: skip
    """One staged row from checked values in CONTACT_FIELDS / CONTRACT_FIELDS order (None: not
    given, unless its bit in `nulls` says it was sent as null)."""
    if contact is None:
        head: tuple[Any, ...] = (False, key, *_NO_CONTACT)
    else:
        attributes = contact[-1]
        head = (True, key, *contact[:-1], None if attributes is None else json.dumps(attributes))
    if contract is None:
        tail: tuple[Any, ...] = _NO_CONTRACT
    else:
        attributes = contract[-1]
        tail = (*contract[:-1], None if attributes is None else json.dumps(attributes))
    return (item, line, n, *head, nulls, *tail, contract_nulls)


class Batch:
    """Rows staged in this transaction's temporary table, then merged with set-based SQL.

    `unique` promises that each contact key and each contract appears once (the import has
    checked the file), which spares the duplicate checks. `place` names a row's `line` in
    messages ("item" for the API, "line" for a file). Set `orphans` when some items have no
    head (a contracts file's rows for a contact not in the file): their contracts go to the
    stored contact of their key, and are refused where there is none.
    """

    def __init__(self, session: Session, *, match: str = "email", place: str = "item",
                 unique: bool = False) -> None:  # fmt: skip
        if match not in ("email", "external_id"):
            raise ValueError("match must be 'email' or 'external_id'")
        self.session, self.match, self.place, self.unique = session, match, place, unique
        self.orphans = False
        self.postgres = session.get_bind().dialect.name == "postgresql"
        connection = session.connection()
        for table in (STAGE, ERRORS):
            connection.execute(CreateTable(table, if_not_exists=True))
            connection.execute(table.delete())

    @contextmanager
    def writer(self) -> Iterator[Any]:
        """Yield a function that stages one `stage_row` tuple (streamed with COPY on PostgreSQL)."""
        connection = self.session.connection()
        if self.postgres:
            raw = connection.connection.driver_connection
            assert raw is not None
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {STAGE.name} ({', '.join(INPUT)}) FROM STDIN") as copy,
            ):
                yield copy.write_row
            connection.exec_driver_sql(f"ANALYZE {STAGE.name}")
            return
        rows: list[tuple[Any, ...]] = []
        marks = ", ".join("?" * len(INPUT))
        sql = f"INSERT INTO {STAGE.name} ({', '.join(INPUT)}) VALUES ({marks})"  # noqa: S608

        def flush() -> None:
            connection.exec_driver_sql(sql, [tuple(_sqlite(v) for v in row) for row in rows])
            rows.clear()

        def add(row: tuple[Any, ...]) -> None:
            rows.append(row)
            if len(rows) >= SQLITE_ROWS:
                flush()

        yield add
        if rows:
            flush()

    def merge(self, *, source: str, user_id: int | None = None) -> None:
        """Match, check and write every staged item; refused items are left out whole."""
        _Merge(self, source, user_id).run()

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """What happened to the written contacts and contracts: {"created": 10, ...} each."""
        s = STAGE
        found: list[dict[str, int]] = []
        for outcome, which in ((s.c.contact_outcome, s.c.head), (s.c.contract_outcome,
                                                                 s.c.n.is_not(None))):  # fmt: skip
            what = func.coalesce(outcome, "created")
            query = select(what, func.count()).where(which, _kept(s)).group_by(what)
            found.append({name: number for name, number in self.session.execute(query)})
        return found[0], found[1]

    def refusals(self) -> list[Refusal]:
        """Every refused value, item by item in the order found."""
        e = ERRORS
        query = select(e.c.item, e.c.n, e.c.field, e.c.value, e.c.reason).order_by(e.c.seq)
        return [Refusal(*row) for row in self.session.execute(query)]

    def rows_of(self, items: Iterable[int]) -> list[tuple[int, int, int | None]]:
        """(item, line, n) of every staged row of these items."""
        wanted = list(items)
        query = select(STAGE.c.item, STAGE.c.line, STAGE.c.n).where(STAGE.c.item.in_(wanted))
        return list(self.session.execute(query.order_by(STAGE.c.line)))

    def outcomes(self, size: int) -> list[Outcome]:
        """One Outcome per item 0 … size-1, with the ids of what was written."""
        s, c, k = STAGE, Contact.__table__, Contract.__table__
        match = s.c.contract_external_id
        new_contract = and_(
            s.c.contract_id.is_(None), k.c.contact_id == c.c.id,
            or_(and_(match.is_not(None), k.c.external_id == match),
                and_(match.is_(None), k.c.product == func.coalesce(s.c.contract_product, ""),
                     k.c.plan == func.coalesce(s.c.contract_plan, ""))),
        )  # fmt: skip
        query = (
            select(s.c.item, s.c.n, s.c.head, c.c.id, func.coalesce(s.c.contact_outcome, "created"),
                   func.coalesce(s.c.contract_id, k.c.id),
                   func.coalesce(s.c.contract_outcome, "created"))
            .join(c, c.c[self.match] == s.c.key)
            .outerjoin(k, and_(s.c.n.is_not(None), new_contract))
            .where(_kept(s))
            .order_by(s.c.item, s.c.n)
        )  # fmt: skip
        outcomes = [Outcome() for _ in range(size)]
        for item, n, head, contact_id, contact, contract_id, contract in self.session.execute(
            query
        ):
            outcome = outcomes[item]
            if head:
                outcome.contact_id, outcome.contact = contact_id, contact
            if n is not None:
                outcome.contracts.append((contract_id, contract))
        for refusal in self.refusals():
            where = "contact" if refusal.n is None else f"contracts[{refusal.n}]"
            outcomes[refusal.item].errors.append(
                FieldError(f"{where}.{refusal.field}", refusal.value, refusal.reason)
            )
        return outcomes


def upsert(
    session: Session,
    items: Sequence[dict[str, Any]],
    *,
    source: str,
    user_id: int | None = None,
    match: str = "email",
) -> list[Outcome]:
    """Write checked contact records (each with optional `contracts`); never commits.

    Returns one Outcome per item, in order.
    """
    batch = Batch(session, match=match)
    with batch.writer() as add:
        for index, item in enumerate(items):
            contact = {k: v for k, v in item.items() if k != "contracts"}
            contracts = item.get("contracts") or [None]
            key = contact.get(match)
            for n, contract in enumerate(contracts):
                add(stage_row(index, index + 1, None if contract is None else n, key,
                              contact if n == 0 else None, contract))  # fmt: skip
    batch.merge(source=source, user_id=user_id)
    return batch.outcomes(len(items))


def _sqlite(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _kept(s: Table) -> ColumnElement[bool]:
    """The row's item has no refused value."""
    return ~exists().where(ERRORS.c.item == s.c.item)


class _Merge:
    """The statements of one merge, in order; each is one set-based pass over the stage."""

    def __init__(self, batch: Batch, source: str, user_id: int | None) -> None:
        self.batch, self.source, self.user_id = batch, source, user_id
        self.session = batch.session
        self.now = literal(utcnow(), UTCDateTime())
        self.contacts = cast(Table, Contact.__table__)
        self.contracts = cast(Table, Contract.__table__)

    def run(self) -> None:
        self.match_contacts()
        self.check_contacts()
        self.match_contracts()
        if self.batch.postgres:  # the planner's figures for the matches just made
            self.session.connection().exec_driver_sql(f"ANALYZE {STAGE.name}")
        self.check_contracts()
        self.write_contacts()
        self.write_contracts()

    def in_order(self, *then: Any) -> list[Any]:
        """New rows' ids in item order, for a caller that reads them (a file's import does not:
        it spares sorting the whole stage)."""
        return [] if self.batch.unique else [STAGE.c.item, *then]

    def execute(self, statement: Any) -> None:
        self.session.execute(statement)

    def refuse(self, query: Any, *, fatal: bool = False) -> None:
        """Record as refusals the rows of `query`: (item, n, field, value, reason)."""
        e = ERRORS
        columns = [e.c.item, e.c.n, e.c.field, e.c.value, e.c.reason, e.c.fatal]
        query = query.add_columns(literal(fatal, Boolean))
        self.execute(insert(e).from_select(columns, query))

    def open_items(self, s: Table) -> ColumnElement[bool]:
        """The row's item can be matched (no fatal refusal)."""
        return ~exists().where(ERRORS.c.item == s.c.item, ERRORS.c.fatal)

    def first_lines(self, column: ColumnElement[Any], where: ColumnElement[bool]) -> Any:
        """(value, first line) of the values of `column` staged more than once."""
        s = STAGE
        return (select(column.label("value"), func.min(s.c.line).label("first"))
                .where(where, column.is_not(None)).group_by(column)
                .having(func.count() > 1).subquery())  # fmt: skip

    def twice(self, column: ColumnElement[Any], where: ColumnElement[bool], name: str,
              n: Any) -> None:  # fmt: skip
        """Refuse each later row that repeats a value of `column` staged earlier."""
        s, place = STAGE, self.batch.place
        first = self.first_lines(column, where)
        reason = f"appears twice ({place} " + sql_cast(first.c.first, String) + ")"
        self.refuse(select(s.c.item, n, literal(name), column, reason)
                    .join(first, first.c.value == column)
                    .where(where, s.c.line > first.c.first))  # fmt: skip

    def match_contacts(self) -> None:
        s, c = STAGE, self.contacts
        self.execute(update(s).values(contact_id=c.c.id)
                     .where(c.c[self.batch.match] == s.c.key))  # fmt: skip

    def check_contacts(self) -> None:
        s, c, match = STAGE, self.contacts, self.batch.match
        self.refuse(select(s.c.item, null(), literal(match), literal(""),
                           literal("is required to match")).where(s.c.head, s.c.key.is_(None)),
                    fatal=True)  # fmt: skip
        if self.batch.orphans:
            self.refuse(
                select(s.c.item, null(), literal(match), func.min(s.c.key),
                       literal("matches no contact, neither in the contacts file nor stored"))
                .where(s.c.contact_id.is_(None)).group_by(s.c.item)
                .having(func.max(sql_cast(s.c.head, Integer)) == 0), fatal=True,
            )  # fmt: skip
        if not self.batch.unique:
            self.twice(s.c.key, s.c.head, match, null())
        s_open = self.open_items(s)
        other = "external_id" if match == "email" else "email"
        self.twice(s.c[other], and_(s.c.head, s_open), other, null())
        for name in ("email", "external_id"):
            owner = c.c.id
            reason = "already belongs to contact #" + sql_cast(owner, String)
            self.refuse(
                select(s.c.item, null(), literal(name), s.c[name], reason)
                .join(c, c.c[name] == s.c[name])
                .where(s.c.head, s_open, or_(s.c.contact_id.is_(None), c.c.id != s.c.contact_id))
            )
        self.refuse(
            select(
                s.c.item,
                null(),
                literal("email"),
                literal(""),
                literal("is required for a new contact"),
            ).where(s.c.head, s_open, s.c.contact_id.is_(None), s.c.email.is_(None))
        )

    def match_contracts(self) -> None:
        s, k = STAGE, self.contracts
        self.execute(update(s).values(contract_id=k.c.id, contract_owner=k.c.contact_id)
                     .where(k.c.external_id == s.c.contract_external_id))  # fmt: skip
        same = (select(func.min(k.c.id)).where(
            k.c.contact_id == s.c.contact_id,
            k.c.product == func.coalesce(s.c.contract_product, ""),
            k.c.plan == func.coalesce(s.c.contract_plan, ""),
        ).scalar_subquery())  # fmt: skip
        self.execute(update(s).values(contract_id=same).where(
            s.c.n.is_not(None), s.c.contract_external_id.is_(None), s.c.contact_id.is_not(None)
        ))  # fmt: skip

    def check_contracts(self) -> None:
        s, k = STAGE, self.contracts
        rows = and_(s.c.n.is_not(None), self.open_items(s))
        ext = s.c.contract_external_id
        reason = "already belongs to contact #" + sql_cast(s.c.contract_owner, String)
        self.refuse(select(s.c.item, s.c.n, literal("external_id"), ext, reason).where(
            rows, s.c.contract_owner.is_not(None),
            or_(s.c.contact_id.is_(None), s.c.contract_owner != s.c.contact_id),
        ))  # fmt: skip
        if not self.batch.unique:
            key = case((ext.is_not(None), "id:" + ext),
                       else_="product:" + func.coalesce(s.c.contract_product, "") + "\x1f"
                       + func.coalesce(s.c.contract_plan, ""))  # fmt: skip
            numbered = select(
                s.c.item, s.c.n, func.coalesce(ext, s.c.contract_plan, "").label("shown"),
                func.row_number().over(partition_by=[s.c.item, key], order_by=s.c.n).label("nth"),
            ).where(rows).subquery()  # fmt: skip
            self.refuse(select(numbered.c.item, numbered.c.n, literal("external_id"),
                               numbered.c.shown, literal("appears twice for this contact"))
                        .where(numbered.c.nth > 1))  # fmt: skip
            first_items = self.first_lines(ext, rows)
            later = and_(rows, s.c.line > first_items.c.first)
            reason = f"appears twice ({self.batch.place} " + sql_cast(first_items.c.first,
                                                                      String) + ")"  # fmt: skip
            self.refuse(select(s.c.item, s.c.n, literal("external_id"), ext, reason)
                        .join(first_items, first_items.c.value == ext).where(later))  # fmt: skip
        for name in CONTRACT_REQUIRED:
            self.refuse(select(s.c.item, s.c.n, literal(name), literal(""),
                               literal("is required for a new contract"))
                        .where(rows, s.c.contract_id.is_(None),
                               s.c["contract_" + name].is_(None)))  # fmt: skip
        starts = func.coalesce(s.c.contract_starts_on, k.c.starts_on)
        ends = func.coalesce(s.c.contract_ends_on, k.c.ends_on)
        self.refuse(select(s.c.item, s.c.n, literal("ends_on"), sql_cast(ends, String),
                           "is before the start " + sql_cast(starts, String))
                    .outerjoin(k, k.c.id == s.c.contract_id)
                    .where(rows, ends < starts))  # fmt: skip

    def merged(self, current: Any, sent: Any) -> Any:
        """Attributes `sent` merged into `current`: null removes a key."""
        if self.batch.postgres:
            return func.jsonb_strip_nulls(func.coalesce(current, sql_cast("{}", JSONType))
                                          .op("||")(sent))  # fmt: skip
        return func.json_patch(func.coalesce(current, "{}"), sent)

    def same_json(self, column: Any) -> Any:
        """The stored JSON as merges spell it (SQLite compares JSON as text)."""
        return column if self.batch.postgres else func.json(column)

    def finals(self, table: Table, prefix: str, names: Sequence[str]) -> dict[str, Any]:
        """Each field's new value for an existing row: the staged one where one was sent."""
        s, values = STAGE, dict[str, Any]()
        nulls = s.c.contract_nulls if prefix else s.c.nulls
        for bit, name in enumerate(names):
            sent, current = s.c[prefix + name], table.c[name]
            if name == "attributes":
                values[name] = case((sent.is_(None), current), else_=self.merged(current, sent))
            elif name in NULLABLE:
                values[name] = case((or_(sent.is_not(None), nulls.op("&")(1 << bit) != 0), sent),
                                    else_=current)  # fmt: skip
            else:
                values[name] = func.coalesce(sent, current)
        return values

    def changed(self, table: Table, values: dict[str, Any]) -> ColumnElement[bool]:
        return or_(*(
            self.same_json(value).is_distinct_from(self.same_json(table.c[name]))
            if name == "attributes" else value.is_distinct_from(table.c[name])
            for name, value in values.items()
        ))  # fmt: skip

    def contact_finals(self) -> dict[str, Any]:
        s, c = STAGE, self.contacts
        values = self.finals(c, "", CONTACT_FIELDS)
        values["status"] = case(
            (s.c.status.is_(None), c.c.status),
            # only a person in the admin re-subscribes a contact
            (and_(s.c.status == ContactStatus.ACTIVE.value,
                  c.c.status != ContactStatus.ACTIVE.value), c.c.status),
            else_=s.c.status,
        )  # fmt: skip
        return values

    def defaults(self, prefix: str, names: Sequence[str], defaults: dict[str, Any]) -> list[Any]:
        """Each field's value for a new row: the staged one, else the default."""
        s, values = STAGE, list[Any]()
        for name in names:
            sent = s.c[prefix + name]
            if name == "attributes":
                values.append(func.coalesce(self.merged(literal({}, JSONType), sent),
                                            literal({}, JSONType)))  # fmt: skip
            elif defaults.get(name, None) is None:
                values.append(sent)
            else:
                values.append(
                    func.coalesce(sent, literal(defaults[name], STAGE.c[prefix + name].type))
                )
        return values

    def write_contacts(self) -> None:
        s, c = STAGE, self.contacts
        finals = self.contact_finals()
        mine = and_(c.c.id == s.c.contact_id, s.c.head, _kept(s))
        self.execute(update(s).values(
            contact_outcome=case((self.changed(c, finals), "updated"), else_="unchanged"),
            old_status=c.c.status,
        ).where(mine))  # fmt: skip
        self.execute(
            update(c)
            .values(**finals, updated_at=self.now)
            .where(c.c.id == s.c.contact_id, s.c.head, s.c.contact_outcome == "updated")
        )
        kept = s.c.status == ContactStatus.ACTIVE.value
        status = case((and_(kept, s.c.old_status != ContactStatus.ACTIVE.value), s.c.old_status),
                      else_=s.c.status)  # fmt: skip
        changes = cast(Table, ContactStatusChange.__table__)
        self.execute(insert(changes).from_select(
            ["contact_id", "status", "reason", "source", "user_id", "occurred_at"],
            select(s.c.contact_id, status, literal(f"set by {self.source}"), literal(self.source),
                   literal(self.user_id, Integer), self.now)
            .where(s.c.head, s.c.contact_outcome == "updated", s.c.status.is_not(None),
                   status != s.c.old_status),
        ))  # fmt: skip
        self.execute(insert(c).from_select(
            [*CONTACT_FIELDS, "created_at", "updated_at"],
            select(*self.defaults("", CONTACT_FIELDS, CONTACT_DEFAULTS), self.now, self.now)
            .where(s.c.head, s.c.contact_id.is_(None), _kept(s)).order_by(*self.in_order()),
        ))  # fmt: skip

    def write_contracts(self) -> None:
        s, c, k = STAGE, self.contacts, self.contracts
        finals = self.finals(k, "contract_", CONTRACT_FIELDS)
        renewed = s.c.contract_ends_on > k.c.ends_on
        finals["status"] = case(
            (s.c.contract_status.is_not(None), s.c.contract_status),
            (and_(renewed, k.c.status == ContractStatus.EXPIRED.value),
             ContractStatus.ACTIVE.value),
            else_=k.c.status,
        )  # fmt: skip
        self.execute(update(s).values(contract_outcome=case(
            (renewed, "renewed"), (self.changed(k, finals), "updated"), else_="unchanged",
        )).where(k.c.id == s.c.contract_id, s.c.n.is_not(None), _kept(s)))  # fmt: skip
        was = s.c.contract_outcome == "renewed"
        self.execute(insert(cast(Table, ContractTerm.__table__)).from_select(
            ["contract_id", "term", "starts_on", "ends_on", "price", "currency", "source",
             "recorded_at"],
            select(k.c.id, k.c.term, k.c.starts_on, k.c.ends_on, k.c.price, k.c.currency,
                   literal(self.source), self.now).where(k.c.id == s.c.contract_id, was),
        ))  # fmt: skip
        self.execute(update(k).values(**finals, term=k.c.term + case((was, 1), else_=0)).where(
            k.c.id == s.c.contract_id, s.c.contract_outcome.in_(("updated", "renewed"))
        ))  # fmt: skip
        self.execute(insert(k).from_select(
            ["contact_id", *CONTRACT_FIELDS, "term", "created_at"],
            select(c.c.id, *self.defaults("contract_", CONTRACT_FIELDS, CONTRACT_DEFAULTS),
                   literal(1), self.now)
            .join(c, c.c[self.batch.match] == s.c.key)
            .where(s.c.n.is_not(None), s.c.contract_id.is_(None), _kept(s))
            .order_by(*self.in_order(s.c.n)),
        ))  # fmt: skip
        # A CRM syncing "what changed since" must see a contact whose contracts changed.
        touched = (
            select(s.c.contact_id.label("id")).distinct()
            .where(s.c.n.is_not(None), s.c.contact_id.is_not(None), _kept(s),
                   or_(s.c.contract_id.is_(None), s.c.contract_outcome != "unchanged"))
            .subquery()
        )  # fmt: skip
        self.execute(update(c).values(updated_at=self.now)
                     .where(c.c.id == touched.c.id, c.c.updated_at != self.now))  # fmt: skip
