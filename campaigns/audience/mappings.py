"""Column mappings of an import: which CSV column feeds which field, suggested and saved.

A mapping is plain JSON, `{"columns": {"E-mail": "contact.email", ...}, "match": "email"}`,
with `"contracts_columns"` for a job whose contracts come in a second file (each row one
contract and the key that finds its contact).
Fields are `contact.<name>`, `contract.<name>`, or a typed custom attribute
`contact.attributes.<name>:<type>` (and `contract.attributes...`) where the type is text,
number, date or bool. `RowMapper` turns one CSV row into the raw contact and contract values
that `records.contact_record` / `contract_record` check, or (`typed`, the import's way) checks
the row's cells with the same records.py parsers and rules straight into value lists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.audience import records
from campaigns.audience.records import FieldError
from campaigns.errors import NotFound, ValidationError
from campaigns.models import ImportMapping

MATCH_KEYS = ("email", "external_id")
ATTRIBUTE_TYPES = ("text", "number", "date", "bool")

CONTACT_FIELDS: dict[str, str] = {
    "contact.email": "Contact · e-mail",
    "contact.external_id": "Contact · external id",
    "contact.first_name": "Contact · first name",
    "contact.last_name": "Contact · last name",
    "contact.locale": "Contact · locale",
    "contact.time_zone": "Contact · time zone",
    "contact.status": "Contact · status",
    "contact.customer_since": "Contact · customer since",
    "contact.lifetime_spend": "Contact · lifetime spend",
}
CONTRACT_FIELDS: dict[str, str] = {
    "contract.external_id": "Contract · external id",
    "contract.product": "Contract · product",
    "contract.plan": "Contract · plan",
    "contract.starts_on": "Contract · starts on",
    "contract.ends_on": "Contract · ends on",
    "contract.status": "Contract · status",
    "contract.price": "Contract · price",
    "contract.currency": "Contract · currency",
    "contract.renewal_url": "Contract · renewal URL",
    "contract.service_points": "Contract · service points",
}
FIELDS = {**CONTACT_FIELDS, **CONTRACT_FIELDS}

# Header names (lower case, letters and digits joined by "_") a CRM export commonly uses.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "contact.email": ("email", "e_mail", "mail", "email_address", "e_mail_address", "emailaddress",
                      "customer_email", "contact_email"),
    "contact.external_id": ("external_id", "customer_id", "customer_number", "customer_no",
                            "client_id", "crm_id", "contact_id", "account_id"),
    "contact.first_name": ("first_name", "firstname", "given_name", "forename", "first"),
    "contact.last_name": ("last_name", "lastname", "surname", "family_name", "last", "name"),
    "contact.locale": ("locale", "language", "lang"),
    "contact.time_zone": ("time_zone", "timezone", "tz"),
    "contact.status": ("contact_status", "customer_status", "subscription_status"),
    "contact.customer_since": ("customer_since", "since", "first_purchase", "joined"),
    "contact.lifetime_spend": ("lifetime_spend", "lifetime_value", "ltv", "total_spend", "spend"),
    "contract.external_id": ("contract_id", "contract_number", "contract_no",
                             "contract_external_id", "agreement_id", "policy_id"),
    "contract.product": ("product", "product_name", "contract_product"),
    "contract.plan": ("plan", "plan_name", "service_plan", "contract_plan", "level"),
    "contract.starts_on": ("starts_on", "start", "start_date", "starts", "begin", "valid_from",
                           "contract_start"),
    "contract.ends_on": ("ends_on", "end", "end_date", "ends", "expiry", "expires", "expiry_date",
                         "expires_on", "valid_until", "contract_end"),
    "contract.status": ("contract_status", "status"),
    "contract.price": ("price", "amount", "contract_price", "fee"),
    "contract.currency": ("currency", "curr", "ccy"),
    "contract.renewal_url": ("renewal_url", "renewal_link", "renew_url", "renewal"),
    "contract.service_points": ("service_points", "points"),
}  # fmt: skip
_ATTRIBUTE = re.compile(r"^(contact|contract)\.attributes\.([^:]{1,100}):(text|number|date|bool)$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
CONTACT_ORDER = tuple(records.CONTACT_FIELDS)  # the order of `RowMapper.typed`'s values
CONTRACT_ORDER = tuple(records.CONTRACT_FIELDS)
_TRUE = {"true", "yes", "y", "1", "t", "x"}
_FALSE = {"false", "no", "n", "0", "f"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where one column's values go: an entity, a field, and for attributes a name and type."""

    entity: str  # contact | contract
    name: str  # the record field, or "attributes"
    attribute: str = ""
    kind: str = ""  # text | number | date | bool, for attributes

    @property
    def field(self) -> str:
        """The field as records name it in a FieldError (contact.email, contact.attributes.x)."""
        suffix = f".{self.attribute}" if self.attribute else ""
        return f"{self.entity}.{self.name}{suffix}"


def target(spec: str) -> Target:
    """Parse a field spec such as `contract.ends_on` or `contact.attributes.tier:number`."""
    if spec in FIELDS:
        entity, _, name = spec.partition(".")
        return Target(entity, name)
    found = _ATTRIBUTE.match(spec)
    if found is None:
        raise ValidationError(f"{spec!r} is not a field an import can fill", field="mapping")
    entity, attribute, kind = found.groups()
    return Target(entity, "attributes", attribute.strip(), kind)


def attribute_name(column: str) -> str:
    """The attribute a column becomes when it maps to no built-in field ("Tier" → "tier")."""
    return re.sub(r"[^0-9a-z]+", "_", column.strip().lower()).strip("_")[:100] or "column"


KEYS = {f"contact.{key}": CONTACT_FIELDS[f"contact.{key}"] for key in MATCH_KEYS}


def choices(column: str, *, contracts_file: bool = False) -> list[tuple[str, str]]:
    """Every field a column may map to, as (spec, label), for a form's drop-down; a contracts
    file's columns fill contract fields and the key that finds the contact."""
    name = attribute_name(column)
    found = list({**KEYS, **CONTRACT_FIELDS}.items() if contracts_file else FIELDS.items())
    for entity in ("contract",) if contracts_file else ("contact", "contract"):
        found += [(f"{entity}.attributes.{name}:{kind}",
                   f"{entity.capitalize()} attribute “{name}” ({kind})")
                  for kind in ATTRIBUTE_TYPES]  # fmt: skip
    return found


def suggest(header: Sequence[str], sample: Sequence[Sequence[str]] = (), *,
            contracts_file: bool = False) -> dict[str, str]:  # fmt: skip
    """Guess a mapping from header names; unknown columns become attributes of a guessed type
    (of the contact, or in a contracts file of the contract)."""
    mapping: dict[str, str] = {}
    allowed = {**KEYS, **CONTRACT_FIELDS} if contracts_file else FIELDS
    taken: set[str] = set()
    entity = "contract" if contracts_file else "contact"
    for index, column in enumerate(header):
        key = attribute_name(column)
        spec = next((f for f, names in SYNONYMS.items()
                     if key in names and f not in taken and f in allowed), None)  # fmt: skip
        if spec is None:
            values = [row[index] for row in sample if index < len(row) and row[index].strip()]
            spec = f"{entity}.attributes.{key}:{_guess_kind(values)}"
        mapping[column] = spec
        taken.add(spec)
    return mapping


def _guess_kind(values: Sequence[str]) -> str:
    if not values:
        return "text"
    for kind in ("number", "date", "bool"):
        try:
            for value in values:
                convert(kind, value)
        except ValueError:
            continue
        return kind
    return "text"


def check_mapping(header: Sequence[str], columns: Mapping[str, str], match: str) -> dict[str, Any]:
    """Refuse a mapping that names unknown columns or fields, or cannot match contacts.

    Returns the mapping as stored on a job: `{"columns": {...}, "match": ...}`, with columns
    mapped to nothing ("" = ignore) left out.
    """
    return {"columns": _checked(header, columns, match), "match": match}


def check_contracts_mapping(header: Sequence[str], columns: Mapping[str, str], match: str, *,
                            filename: str = "the contracts file") -> dict[str, str]:  # fmt: skip
    """Refuse a contracts file's mapping that fills contact fields (they belong in the first
    file), fills no contract field, or lacks the key that finds each contract's contact.

    Returns the columns as stored on a job (under "contracts_columns").
    """
    kept = _checked(header, columns, match, filename=filename)
    for column, spec in kept.items():
        if not spec.startswith("contract.") and spec != f"contact.{match}":
            raise ValidationError(
                f"{filename}: column {column!r} fills {target(spec).field}, but a contracts file "
                f"fills contract fields and contact.{match} only (contacts are matched by "
                f"{match}); map it in the contacts file, or ignore it", field="contracts_mapping",
            )  # fmt: skip
    if all(not spec.startswith("contract.") for spec in kept.values()):
        raise ValidationError(f"{filename}: no column is mapped to a contract field",
                              field="contracts_mapping")  # fmt: skip
    return kept


def _checked(header: Sequence[str], columns: Mapping[str, str], match: str, *,
             filename: str = "") -> dict[str, str]:  # fmt: skip
    if match not in MATCH_KEYS:
        raise ValidationError("contacts are matched by email or by external_id", field="match")
    where = f"{filename}: " if filename else ""
    kept: dict[str, str] = {}
    used: dict[str, str] = {}
    for column, spec in columns.items():
        if not spec:
            continue
        if column not in header:
            raise ValidationError(f"{where or 'the file '}has no column {column!r}",
                                  field="mapping")  # fmt: skip
        field = target(spec).field
        if field in used:
            raise ValidationError(
                f"{where}the columns {used[field]!r} and {column!r} both fill {field}; choose one",
                field="mapping",
            )
        used[field] = column
        kept[column] = spec
    key = f"contact.{match}"
    if key not in used:
        what = "e-mail addresses" if match == "email" else "external ids"
        raise ValidationError(
            f"{where}no column is mapped to {key}, and contacts are matched by it: map the column "
            f"that holds the {what}" + (", or match by external id" if match == "email" else ""),
            field="mapping",
        )
    return kept


def convert(kind: str, raw: str) -> Any:
    """Type one attribute value; raise ValueError with what to write instead."""
    value = raw.strip()
    if kind == "text":
        if len(value) > 1000:
            raise ValueError("is longer than 1000 characters")
        return value
    if kind == "number":
        if not _NUMBER.match(value):
            raise ValueError("is not a number; write it like 12 or 12.5 (a dot for decimals)")
        number = float(value)
        if abs(number) > 1e15:
            raise ValueError("is too large")
        whole = number.is_integer() and not any(c in value for c in ".eE")
        return int(number) if whole else number
    if kind == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("is not a date; write it YYYY-MM-DD, e.g. 2026-12-31") from None
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError("is not yes/no; write true or false")


class RowMapper:
    """Turns CSV rows into raw contact and contract values, and names the column of a field."""

    def __init__(self, header: Sequence[str], mapping: Mapping[str, Any]) -> None:
        self.match: str = mapping["match"]
        index = {name: i for i, name in enumerate(header)}
        self.width = len(header)
        self.slots: list[tuple[int, str, Target]] = [
            (index[column], column, target(spec)) for column, spec in mapping["columns"].items()
        ]
        self.columns: dict[str, str] = {t.field: column for _, column, t in self.slots}
        self.has_contracts = any(t.entity == "contract" for _, _, t in self.slots)
        self.contact_cells = [_cell(order, i, t) for order, (i, _, t) in enumerate(self.slots)
                              if t.entity == "contact"]  # fmt: skip
        self.contract_cells = [_cell(order, i, t) for order, (i, _, t) in enumerate(self.slots)
                               if t.entity == "contract"]  # fmt: skip
        self.email = next((i for i, _, t in self.slots if t.field == "contact.email"), None)
        self.last: tuple[Any, _Side] | None = None

    def typed(self, row: Sequence[str]) -> tuple[list[Any], list[Any] | None, list[FieldError]]:
        """Check a row with the records' parsers, without the dictionaries between.

        Returns its contact's values and its contract's values (None when the row has none) in
        `CONTACT_ORDER` / `CONTRACT_ORDER` (None for an empty cell), and every refused value:
        the same as `raw` then `records.contact_record` / `contract_record` give (a test holds
        the two ways to it). A row that repeats the previous row's contact cells (one row per
        contract) reuses that contact's check.
        """
        cells = tuple(row[cell[1]] for cell in self.contact_cells)
        if self.last is not None and self.last[0] == cells:
            contact = self.last[1]
        else:
            found, attribute_errors, field_errors = _side(
                row, self.contact_cells, len(CONTACT_ORDER), "contact"
            )
            values = [None] * len(CONTACT_ORDER) if found is None else found
            email = "" if self.email is None else row[self.email]
            records.contact_rules(field_errors, has_email=bool(email) and not email.isspace(),
                                  external_id=values[1])  # fmt: skip
            contact = (values, attribute_errors, field_errors)
            self.last = (cells, contact)
        contract = _side(row, self.contract_cells, len(CONTRACT_ORDER), "contract")
        ordered = contact[1] + contract[1]
        if contact[1] and contract[1]:
            ordered.sort(key=lambda slot_error: slot_error[0])
        errors = [error for _, error in ordered] + contact[2]
        terms = contract[0]
        if terms is not None:
            errors += contract[2]
            records.contract_rules(errors, terms[3], terms[4], terms[1])
        return cast(list[Any], contact[0]), terms, errors

    def column_of(self, field: str) -> str:
        """The CSV column a record's field came from ("" when no column fills it)."""
        found = self.columns.get(field)
        if found is None and field.endswith(".attributes"):
            return ""
        return found or ""

    def raw(self, row: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any], list[FieldError]]:
        """Return the row's raw contact values, raw contract values and attribute errors.

        Empty cells are left out: an import never blanks a field it has no value for.
        """
        contact: dict[str, Any] = {}
        contract: dict[str, Any] = {}
        errors: list[FieldError] = []
        for i, _column, spec in self.slots:
            cell = row[i]
            if not cell or not cell.strip():
                continue
            values = contact if spec.entity == "contact" else contract
            if not spec.attribute:
                values[spec.name] = cell
                continue
            try:
                typed = convert(spec.kind, cell)
            except ValueError as exc:
                errors.append(FieldError(spec.field, cell, str(exc)))
                continue
            values.setdefault("attributes", {})[spec.attribute] = typed
        return contact, contract, errors


# One entity's values (None: no cell of it), its attribute errors by slot, its field errors.
_Side = tuple[list[Any] | None, list[tuple[int, FieldError]], list[FieldError]]
# How `typed` reads a column: slot, index in the row, position in the values, parser (None for
# a typed attribute), target.
_CellPlan = tuple[int, int, int, records.Parser | None, Target]


def _cell(slot: int, index: int, target: Target) -> _CellPlan:
    contract = target.entity == "contract"
    order, fields = ((CONTRACT_ORDER, records.CONTRACT_FIELDS) if contract
                     else (CONTACT_ORDER, records.CONTACT_FIELDS))  # fmt: skip
    parse = None if target.attribute else fields[target.name]
    return (slot, index, order.index(target.name), parse, target)


def _side(row: Sequence[str], cells: list[_CellPlan], size: int, entity: str) -> _Side:
    values: list[Any] | None = None
    attributes: dict[str, Any] | None = None
    attribute_errors: list[tuple[int, FieldError]] = []
    errors: list[FieldError] = []
    for slot, index, position, parse, target in cells:
        cell = row[index]
        if not cell or cell.isspace():
            continue
        if parse is None:
            try:
                typed = convert(target.kind, cell)
            except ValueError as exc:
                attribute_errors.append((slot, FieldError(target.field, cell, str(exc))))
                continue
            if attributes is None:
                attributes = {}
            attributes[target.attribute] = typed
        if values is None:
            values = [None] * size
        if parse is None:
            continue
        try:
            values[position] = parse(cell)
        except ValueError as exc:
            errors.append(records.refusal(entity, target.name, cell, exc))
    if attributes is not None and values is not None:
        try:
            values[-1] = records.CONTACT_FIELDS["attributes"](attributes)
        except ValueError as exc:
            errors.append(records.refusal(entity, "attributes", attributes, exc))
    return values, attribute_errors, errors


def save_mapping(session: Session, name: str, mapping: Mapping[str, Any]) -> ImportMapping:
    """Keep a mapping under a name (replacing one of the same name) to reuse next time."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError("a saved mapping needs a name of 1 to 200 characters", field="name")
    saved = session.scalar(select(ImportMapping).where(ImportMapping.name == name))
    if saved is None:
        saved = ImportMapping(name=name, mapping=dict(mapping))
        session.add(saved)
    else:
        saved.mapping = dict(mapping)
    session.flush()
    return saved


def saved_mappings(session: Session) -> list[ImportMapping]:
    """Every saved mapping, by name."""
    return list(session.scalars(select(ImportMapping).order_by(ImportMapping.name)))


def get_mapping(session: Session, name: str) -> ImportMapping:
    """A saved mapping by its name."""
    saved = session.scalar(select(ImportMapping).where(ImportMapping.name == name))
    if saved is None:
        raise NotFound(f"no saved mapping named {name!r}")
    return saved


def applied(saved: Mapping[str, Any], header: Sequence[str], *, contracts_file: bool = False
            ) -> dict[str, str]:  # fmt: skip
    """A saved mapping's columns that this file (or contracts file) has (a column it lacks is
    simply not mapped)."""
    columns: dict[str, str] = saved.get("contracts_columns" if contracts_file else "columns", {})
    return {column: spec for column, spec in columns.items() if column in header}
