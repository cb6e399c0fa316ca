"""Items of a request turned into checked records and written; results named the API's way.

Every value goes through `campaigns.audience.records` (the one judge of what is valid) and
every write through `campaigns.audience.upserts.upsert`; here the refused fields only get
their place in the request: `contacts[3].contracts[0].ends_on`. A contract renewed by the
write (its end date moved forward) is recorded as a conversion at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from campaigns.audience import upserts
from campaigns.audience.erasure import PLACEHOLDER_DOMAIN
from campaigns.audience.records import FieldError, contact_record, contract_record
from campaigns.tracking import conversions
from campaigns.web.context import settings

CHUNK = 2500  # items per upsert call ("a few thousand")


def upsert_items(
    session: Session,
    raw_items: Sequence[dict[str, Any]],
    *,
    match: str,
    user_id: int,
    places: Sequence[str],
) -> list[upserts.Outcome]:
    """Check and write contact items; `places[i]` prefixes item i's field names ("" or
    "contacts[3]."). Refused items are reported in their Outcome and nothing of them written."""
    outcomes: list[upserts.Outcome | None] = [None] * len(raw_items)
    checked: list[tuple[int, dict[str, Any]]] = []
    for index, raw in enumerate(raw_items):
        record, errors = _checked(raw, places[index])
        if errors:
            outcomes[index] = upserts.Outcome(errors=errors)
        else:
            checked.append((index, record))
    for start in range(0, len(checked), CHUNK):
        chunk = checked[start : start + CHUNK]
        written = upserts.upsert(
            session, [record for _, record in chunk], source="api", user_id=user_id, match=match
        )
        for (index, _), outcome in zip(chunk, written, strict=True):
            outcome.errors = [_placed(e, places[index]) for e in outcome.errors]
            outcomes[index] = outcome
    done = [outcome or upserts.Outcome() for outcome in outcomes]
    if any(o == "renewed" for outcome in done for _, o in outcome.contracts):
        # An end date moved forward is a renewal: record it now, for the CRM's next read.
        conversions.detect(session, window=timedelta(days=settings().results.attribution_days))
    return done


def _checked(raw: dict[str, Any], place: str) -> tuple[dict[str, Any], list[FieldError]]:
    fields = {k: v for k, v in raw.items() if k != "contracts"}
    record, errors = contact_record(fields)
    errors = [_placed(e, place) for e in errors]
    email = record.get("email")
    if isinstance(email, str) and email.endswith("@" + PLACEHOLDER_DOMAIN):
        errors.append(FieldError(f"{place}email", email, "is reserved for erased contacts"))
    contracts = []
    for n, raw_contract in enumerate(raw.get("contracts") or []):
        contract, contract_errors = contract_record(raw_contract)
        errors += [_placed(e, f"{place}contracts[{n}].") for e in contract_errors]
        contracts.append(contract)
    if "contracts" in raw:
        record["contracts"] = contracts
    return record, errors


def _placed(error: FieldError, place: str) -> FieldError:
    """Name a field by its place in the request instead of records.py's `contact.` prefix."""
    name = error.field
    for prefix in ("contact.", "contract."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return FieldError(place + name, error.value, error.reason)
