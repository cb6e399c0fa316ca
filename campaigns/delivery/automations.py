"""Automations: lifecycle letters per contract, decided by the scheduler tick in set-based SQL.

An automation has a trigger — the contract's start, N days before its end (an expiry series
such as 60/30/7), its end, N days after its end (win-back) — and one step per offset. Step
k of a contract is due on its day D_k (the anchor date shifted by the offset) and stays
valid until `max_late_days` after it, and never once the next step of the series is due:

    anchor ∈ [max(T − shift − late, T − next_shift + 1), T − shift]   for the local date T

so a contract that comes in late (imported 10 days before its end into a 60/30/7 series)
gets only the step still valid — here none until the 7-day one — never a burst of missed
ones (RELIABILITY.md 42). The conditions are ranges on the anchor date with dates computed
here, so each step is one `INSERT … SELECT` over the contracts index, on both databases.

- **Once per term.** The ledger's unique key (step, contract, term) makes each step fire
  once per contract term; a renewal moves the end date and raises the term, so the series
  stops for the old term and re-arms for the new one. Rows of the old term still waiting
  are suppressed ("the contract was renewed").
- **Send window** in each contact's own time zone (weekdays and hours, DST-correct through
  zoneinfo): the contacts whose window is open now are those whose time zone is, so the
  statement filters on the list of open zones, grouped by their local date.
- **Caps and priority.** A letter stopped by a frequency cap is written `deferred` with the
  cap's reason; each tick reconsiders deferred letters first, queues those with a free slot
  (one per contact per tick) and suppresses those no longer valid. Steps are decided in
  priority order (campaigns.delivery.caps.rank), so a higher one takes a contested slot.
- **Holdout**: a stable share of each automation's contracts (the same contracts for all
  of its steps) is written `held_out`, with the same step, contract and term.

The support side triggers per *occasion* instead of per contract term, each once (the
ledger's unique (step, occasion)): "points_low" N days after the points entry that took the
balance from above `threshold` to it or below ("points:ENTRY"; not while the balance is
back above it); "points_expiring" N days before the expiry date of a contact's credited
points, while they hold points ("expiry:CONTACT:DATE"); "incident_closed" N days after a
help-desk incident was closed ("incident:ID", the satisfaction survey). Days count in the
contact's time zone, with the same lateness, send window, caps and holdout.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.sql import Select

from campaigns.audience import segments
from campaigns.config import Caps
from campaigns.db import UTCDateTime, require, utcnow
from campaigns.delivery import caps as capping
from campaigns.delivery import ledger
from campaigns.errors import NotFound, ValidationError
from campaigns.letters import approvals, authoring
from campaigns.letters.context import zone
from campaigns.models import (
    DELIVERED_STATES,
    Acknowledgment,
    Automation,
    AutomationStep,
    AutomationTrigger,
    Contact,
    Contract,
    ContractStatus,
    Delivery,
    DeliveryState,
    Incident,
    Letter,
    LetterKind,
    LetterVersion,
    PointsEntry,
    Segment,
)
from campaigns.models.letters import LetterNeeds
from campaigns.models.service import CREDITS

Trigger = AutomationTrigger
WEEKDAYS = "1234567"
# Contracts a trigger may still write to: nothing goes about a cancelled contract, and
# reminders before or on the end only about one still running.
LIVE = {
    Trigger.ON_START: (ContractStatus.ACTIVE,),
    Trigger.BEFORE_END: (ContractStatus.ACTIVE,),
    Trigger.ON_END: (ContractStatus.ACTIVE, ContractStatus.EXPIRED),
    Trigger.AFTER_END: (ContractStatus.ACTIVE, ContractStatus.EXPIRED),
}
# Triggers about a contact's support, not a contract: one letter per occasion.
SUPPORT = frozenset({Trigger.POINTS_LOW, Trigger.POINTS_EXPIRING, Trigger.INCIDENT_CLOSED})
# Triggers whose steps come before their date (N days before the end, before the expiry).
BEFORE = frozenset({Trigger.BEFORE_END, Trigger.POINTS_EXPIRING})
MAX_THRESHOLD = 100_000
RENEWED_REASON = "the contract was renewed (or ended) before this letter could go"
ACKNOWLEDGED_REASON = "the letter it reminds of was acknowledged meanwhile"


@dataclass(frozen=True)
class StepInput:
    offset_days: int
    letter_version_id: int


# ---------------------------------------------------------------------------- editing


def _check(
    session: Session, *, name: str, trigger: str, steps: list[StepInput], holdout_percent: int,
    max_late_days: int, window_days: str, window_start_hour: int, window_end_hour: int,
    letter_id: int | None, threshold: int | None = None,
) -> Trigger:  # fmt: skip
    if not name.strip():
        raise ValidationError("an automation needs a name", field="name")
    try:
        kind = Trigger(trigger)
    except ValueError:
        choices = ", ".join(t.value for t in Trigger)
        raise ValidationError(f"the trigger must be one of {choices}", field="trigger") from None
    if kind == Trigger.UNACKNOWLEDGED:
        awaited = session.get(Letter, letter_id) if letter_id is not None else None
        if awaited is None or awaited.kind != LetterKind.POLICY:
            raise ValidationError("choose the policy letter whose acknowledgment is awaited",
                                  field="letter_id")  # fmt: skip
    if kind == Trigger.POINTS_LOW and (threshold is None or not 0 <= threshold <= MAX_THRESHOLD):
        raise ValidationError(f"say at which balance it fires: 0 to {MAX_THRESHOLD:,} points",
                              field="threshold")  # fmt: skip
    if not steps:
        raise ValidationError("add at least one step (a letter and its day)", field="steps")
    offsets = [s.offset_days for s in steps]
    if len(set(offsets)) != len(offsets):
        raise ValidationError("two steps have the same day; give each its own", field="steps")
    for index, step in enumerate(steps, start=1):
        if not 0 <= step.offset_days <= 3650:
            raise ValidationError(f"step {index}: the days must be between 0 and 3650",
                                  field=f"steps.{index}.offset_days")  # fmt: skip
        if kind == Trigger.UNACKNOWLEDGED and step.offset_days == 0:
            raise ValidationError(f"step {index}: a reminder to acknowledge comes at least a "
                                  "day after the letter",
                                  field=f"steps.{index}.offset_days")  # fmt: skip
        if kind == Trigger.BEFORE_END and step.offset_days == 0:
            raise ValidationError(f"step {index}: 0 days before the end is the end date; "
                                  "use the trigger 'on the end date' for it",
                                  field=f"steps.{index}.offset_days")  # fmt: skip
        if kind == Trigger.POINTS_EXPIRING and step.offset_days == 0:
            raise ValidationError(f"step {index}: on the expiry day the points are gone; "
                                  "warn at least a day before",
                                  field=f"steps.{index}.offset_days")  # fmt: skip
        try:
            version = authoring.get_version(session, step.letter_version_id)
            approvals.check_usable(version)
            if kind == Trigger.UNACKNOWLEDGED and version.needs == LetterNeeds.CONTRACT:
                raise ValidationError(
                    f"{version.label} needs a contract, and a reminder to acknowledge is "
                    "about the letter, not a contract"
                )
            if kind in SUPPORT and version.needs == LetterNeeds.CONTRACT:
                raise ValidationError(
                    f"{version.label} needs a contract, and this trigger is about the "
                    "customer's support (points, incidents), not a contract"
                )
        except NotFound:
            raise ValidationError(f"step {index}: that letter version does not exist (any "
                                  "more); choose another",
                                  field=f"steps.{index}.letter_version_id") from None  # fmt: skip
        except ValidationError as exc:
            raise ValidationError(f"step {index}: {exc}",
                                  field=f"steps.{index}.letter_version_id") from None  # fmt: skip
    if not 0 <= holdout_percent <= 50:
        raise ValidationError("the holdout must be between 0 and 50 percent", field="holdout")
    if not 0 <= max_late_days <= 60:
        raise ValidationError("the lateness allowed must be 0 to 60 days", field="max_late_days")
    if not window_days or any(d not in WEEKDAYS for d in window_days):
        raise ValidationError("choose at least one weekday for the send window",
                              field="window_days")  # fmt: skip
    if not 0 <= window_start_hour < window_end_hour <= 24:
        raise ValidationError("the send window must start before it ends, within 0–24 h",
                              field="window_start_hour")  # fmt: skip
    return kind


def create_automation(
    session: Session, name: str, *, trigger: str, steps: list[StepInput],
    segment_id: int | None = None, holdout_percent: int = 0, max_late_days: int = 3,
    window_days: str = WEEKDAYS, window_start_hour: int = 0, window_end_hour: int = 24,
    enabled: bool = False, letter_id: int | None = None, threshold: int | None = None,
) -> Automation:  # fmt: skip
    """Create an automation with its steps (off until enabled, unless `enabled`)."""
    automation = Automation(name="", trigger=Trigger.BEFORE_END)
    session.add(automation)
    return update_automation(
        session, automation, name=name, trigger=trigger, steps=steps, segment_id=segment_id,
        holdout_percent=holdout_percent, max_late_days=max_late_days, window_days=window_days,
        window_start_hour=window_start_hour, window_end_hour=window_end_hour, enabled=enabled,
        letter_id=letter_id, threshold=threshold,
    )  # fmt: skip


def update_automation(
    session: Session, automation: Automation, *, name: str, trigger: str,
    steps: list[StepInput], segment_id: int | None, holdout_percent: int, max_late_days: int,
    window_days: str, window_start_hour: int, window_end_hour: int, enabled: bool,
    letter_id: int | None = None, threshold: int | None = None,
) -> Automation:  # fmt: skip
    """Change an automation. A step keeps its ledger rows (and so never re-sends) as long as
    its day stays; a step whose letters went out cannot be removed — turn it off instead."""
    kind = _check(session, name=name, trigger=trigger, steps=steps,
                  holdout_percent=holdout_percent, max_late_days=max_late_days,
                  window_days=window_days, window_start_hour=window_start_hour,
                  window_end_hour=window_end_hour, letter_id=letter_id,
                  threshold=threshold)  # fmt: skip
    if segment_id is not None and session.get(Segment, segment_id) is None:
        raise ValidationError("that segment does not exist (any more); choose another",
                              field="segment_id")  # fmt: skip
    taken = session.scalar(select(Automation.id).where(
        Automation.name == name.strip(), Automation.id != automation.id))  # fmt: skip
    if taken is not None:
        raise ValidationError(f"an automation named {name.strip()!r} exists already",
                              field="name")  # fmt: skip
    if automation.id is not None and kind != automation.trigger and _has_rows(session, automation):
        raise ValidationError("the trigger of an automation that sent letters cannot change; "
                              "create a new automation instead", field="trigger")  # fmt: skip
    wanted = {s.offset_days: s.letter_version_id for s in steps}
    for step in list(automation.steps):
        if step.offset_days in wanted:
            step.letter_version_id = wanted.pop(step.offset_days)
        elif session.scalar(select(exists().where(Delivery.automation_step_id == step.id))):
            raise ValidationError(
                f"the step at {step.offset_days} days has letters in the ledger and cannot be "
                "removed; turn the automation off, or create a new one",
                field="steps",
            )
        else:
            automation.steps.remove(step)
    for offset, version_id in sorted(wanted.items()):
        automation.steps.append(AutomationStep(offset_days=offset, letter_version_id=version_id))
    automation.name = name.strip()
    automation.trigger = kind
    automation.segment_id = segment_id
    automation.letter_id = letter_id if kind == Trigger.UNACKNOWLEDGED else None
    automation.threshold = threshold if kind == Trigger.POINTS_LOW else None
    automation.holdout_percent = holdout_percent
    automation.max_late_days = max_late_days
    automation.window_days = "".join(sorted(set(window_days)))
    automation.window_start_hour = window_start_hour
    automation.window_end_hour = window_end_hour
    automation.enabled = enabled
    session.flush()
    return automation


def _has_rows(session: Session, automation: Automation) -> bool:
    ids = [step.id for step in automation.steps]
    return bool(ids) and bool(
        session.scalar(select(exists().where(Delivery.automation_step_id.in_(ids))))
    )


def set_enabled(session: Session, automation_id: int, enabled: bool) -> Automation:
    automation = get_automation(session, automation_id)
    automation.enabled = enabled
    return automation


def get_automation(session: Session, automation_id: int) -> Automation:
    return require(session, Automation, automation_id, what="automation")


def list_automations(session: Session) -> list[Automation]:
    return list(session.scalars(
        select(Automation).options(selectinload(Automation.steps)).order_by(Automation.name)
    ))  # fmt: skip


# ---------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """When one step is valid: the anchor date range for a local date T."""

    step: AutomationStep
    shift: int  # days from the anchor to the step's day
    next_shift: int | None  # the next step's, if the series goes on
    late: int
    trigger: Trigger

    def anchor_range(self, today: date) -> tuple[date, date]:
        """The anchors (end or start dates) whose step is valid on `today`, inclusive."""
        low = today - timedelta(days=self.shift + self.late)
        if self.next_shift is not None:
            low = max(low, today - timedelta(days=self.next_shift - 1))
        if self.trigger in BEFORE:
            low = max(low, today + timedelta(days=1))  # never a reminder once it has ended
        return low, today - timedelta(days=self.shift)

    def day(self, anchor: date) -> date:
        return anchor + timedelta(days=self.shift)


def timings(automation: Automation) -> list[Timing]:
    """Each step's timing, in the order its day comes."""
    sign = -1 if automation.trigger in BEFORE else 1  # days after the anchor
    ordered = sorted(automation.steps, key=lambda s: sign * s.offset_days)
    shifts = [sign * s.offset_days for s in ordered]
    return [
        Timing(step, shift, shifts[i + 1] if i + 1 < len(shifts) else None,
               automation.max_late_days, Trigger(automation.trigger))
        for i, (step, shift) in enumerate(zip(ordered, shifts, strict=True))
    ]  # fmt: skip


def anchor(trigger: Trigger) -> Any:
    return Contract.starts_on if trigger == Trigger.ON_START else Contract.ends_on


def local_dates(time_zones: Iterable[str], now: datetime,
                automation: Automation | None = None) -> dict[date, list[str]]:  # fmt: skip
    """The time zones grouped by their local date now; with an automation, only those whose
    send window is open now."""
    groups: dict[date, list[str]] = defaultdict(list)
    for name in time_zones:
        local = now.astimezone(zone(name))
        if automation is not None and not (
            str(local.isoweekday()) in automation.window_days
            and automation.window_start_hour <= local.hour < automation.window_end_hour
        ):
            continue
        groups[local.date()].append(name)
    return dict(groups)


def _valid(
    timing: Timing, groups: dict[date, list[str]], column: Any = None
) -> ColumnElement[bool]:
    """The contract's (or `column`'s date's) step is valid today where its contact lives."""
    column = anchor(timing.trigger) if column is None else column
    parts = []
    for today, zones in groups.items():
        low, high = timing.anchor_range(today)
        if low <= high:
            parts.append(and_(Contact.time_zone.in_(zones), column.between(low, high)))
    # Not false(): and_() folds it, dropping the join conditions beside it.
    return or_(*parts) if parts else literal(False)


# ---------------------------------------------------------------------------- the tick


@dataclass(frozen=True)
class Step:
    """A step to decide this tick, with what its statements need."""

    automation: Automation
    timing: Timing
    rank: int


def enabled_steps(session: Session) -> list[Step]:
    """Every step of the enabled automations, highest priority first."""
    found = []
    for automation in list_automations(session):
        if not automation.enabled:
            continue
        for timing in timings(automation):
            letter = timing.step.letter_version.letter
            found.append(Step(automation, timing, capping.rank(letter.category, letter.kind)))
    return sorted(found, key=lambda s: (-s.rank, s.automation.id, s.timing.shift))


def time_zones(session: Session) -> list[str]:
    return list(session.scalars(select(Contact.time_zone).distinct()))


def fire(session: Session, step: Step, *, now: datetime, caps: Caps,
         zones: list[str]) -> int:  # fmt: skip
    """Write the ledger rows of one step due now (one INSERT … SELECT); return how many."""
    groups = local_dates(zones, now, step.automation)
    if not groups:
        return 0
    if step.timing.trigger == Trigger.UNACKNOWLEDGED:
        chosen = _unacknowledged(step, groups).subquery()
    elif step.timing.trigger in SUPPORT:
        chosen = _occasions(step, groups, now=now).subquery()
    else:
        chosen = _contracts_due(step, groups, now=now).subquery()
    automation, version = step.automation, step.timing.step.letter_version
    category, kind = version.letter.category, version.letter.kind
    contact_id = chosen.c.contact_id
    checks = ledger.reachable_checks(category, kind, email=chosen.c.email,
                                     status=chosen.c.status, contact_id=contact_id)  # fmt: skip
    checks.append(ledger.Check(
        ledger.holdout_bucket(holdout_seed(automation), chosen.c.subject)
        < automation.holdout_percent, DeliveryState.HELD_OUT, "holdout group",
    ))  # fmt: skip
    cap_rules = capping.rules(caps, category, contact_id, now=now, earlier=chosen.c.place - 1)
    checks += [ledger.Check(rule.blocked, DeliveryState.DEFERRED, rule.reason)
               for rule in cap_rules]  # fmt: skip
    state, reason = ledger.verdict(checks)
    at = literal(now, UTCDateTime())
    rows = select(
        literal(step.timing.step.id), contact_id, chosen.c.contract_id, chosen.c.term,
        chosen.c.reminds_id, chosen.c.occasion, literal(automation.segment_id),
        literal(version.id), chosen.c.email, state, reason, literal(0), at, at,
    ).where(true())  # SQLite reads "FROM x ON CONFLICT" as a join without it  # fmt: skip
    columns = ["automation_step_id", "contact_id", "contract_id", "term", "reminds_id",
               "occasion", "segment_id", "letter_version_id", "email", "state", "reason",
               "attempts", "created_at", "due_at"]  # fmt: skip
    stmt = ledger.insert_ignoring_duplicates(session, Delivery).from_select(columns, rows)
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return _count(result)


def _contracts_due(step: Step, groups: dict[date, list[str]], *, now: datetime) -> Select[Any]:
    """The contracts whose step is due now and not yet written for their term: contact,
    contract, term, address, status, place among the contact's (by date), holdout subject."""
    automation, timing = step.automation, step.timing
    column = anchor(timing.trigger)
    candidates: Select[Any] = (
        select(
            Contract.id.label("contract_id"), Contract.contact_id, Contract.term,
            Contact.email, Contact.status,
            func.row_number().over(partition_by=Contract.contact_id,
                                   order_by=(column, Contract.id)).label("place"),
            Contract.id.label("subject"), cast(null(), Integer).label("reminds_id"),
            cast(null(), String).label("occasion"),
        )
        .join(Contact, Contact.id == Contract.contact_id)
        .where(
            _valid(timing, groups),
            Contract.status.in_(LIVE[timing.trigger]),
            Contact.erased_at.is_(None),
            ~exists().where(Delivery.automation_step_id == timing.step.id,
                            Delivery.contract_id == Contract.id, Delivery.term == Contract.term),
        )
    )  # fmt: skip
    if automation.segment is not None:
        candidates = candidates.where(_in_segment(automation, now.date()))
    return candidates


def _acknowledged(letter: Any) -> ColumnElement[bool]:
    """The policy letter of this ledger row (or a reminder of it) was acknowledged."""
    reminder = aliased(Delivery)
    return or_(
        exists().where(Acknowledgment.delivery_id == letter.id),
        exists().where(Acknowledgment.delivery_id == reminder.id,
                       reminder.reminds_id == letter.id),
    )  # fmt: skip


def _sent_within(
    timing: Timing, groups: dict[date, list[str]], sent_at: Any
) -> ColumnElement[bool]:
    """The letter went out on a day (in its contact's time zone) its reminder step is due."""
    parts = []
    for today, names in groups.items():
        low, high = timing.anchor_range(today)
        for name in names if low <= high else ():
            start = datetime.combine(low, time(), tzinfo=zone(name))
            end = datetime.combine(high + timedelta(days=1), time(), tzinfo=zone(name))
            parts.append(and_(Contact.time_zone == name, sent_at >= start, sent_at < end))
    # Not false(): and_() folds it, dropping the join conditions beside it.
    return or_(*parts) if parts else literal(False)


def _unacknowledged(step: Step, groups: dict[date, list[str]]) -> Select[Any]:
    """The policy letters sent N days ago and not acknowledged, with no reminder of this
    step yet: the same columns as `_contracts_due`, about the letter instead of a contract."""
    automation, timing = step.automation, step.timing
    letter = aliased(Delivery)
    query: Select[Any] = (
        select(
            cast(null(), Integer).label("contract_id"), letter.contact_id,
            cast(null(), Integer).label("term"),
            Contact.email, Contact.status,
            func.row_number().over(partition_by=letter.contact_id,
                                   order_by=letter.id).label("place"),
            letter.id.label("subject"), letter.id.label("reminds_id"),
            cast(null(), String).label("occasion"),
        )
        .join(Contact, Contact.id == letter.contact_id)
        .join(LetterVersion, LetterVersion.id == letter.letter_version_id)
        .where(
            LetterVersion.letter_id == automation.letter_id,
            letter.state.in_(DELIVERED_STATES),
            letter.reminds_id.is_(None),
            _sent_within(timing, groups, letter.sent_at),
            Contact.erased_at.is_(None),
            ~_acknowledged(letter),
            ~exists().where(Delivery.automation_step_id == timing.step.id,
                            Delivery.reminds_id == letter.id),
        )
    )  # fmt: skip
    if automation.segment is not None:
        query = query.where(_in_segment(automation, utcnow().date(), contact_id=letter.contact_id))
    return query


@dataclass(frozen=True)
class Source:
    """Where a support trigger's occasions come from: the ledger's `occasion` key of each,
    the contact, what the holdout draws, and the conditions of one being due."""

    occasion: ColumnElement[str]
    contact_id: Any
    subject: Any
    due: list[ColumnElement[bool]]


def _balance_of(contact_id: Any) -> Any:
    """The contact's points balance now: its latest entry's balance after it."""
    latest = aliased(PointsEntry)
    return (
        select(latest.balance_after).where(latest.contact_id == contact_id)
        .order_by(latest.id.desc()).limit(1).scalar_subquery()
    )  # fmt: skip


def _source(automation: Automation, timing: Timing, groups: dict[date, list[str]]) -> Source:
    """The occasions of a support trigger due on the local dates of `groups`."""
    trigger = timing.trigger
    if trigger == Trigger.POINTS_LOW:
        entry, threshold = aliased(PointsEntry), automation.threshold or 0
        return Source(
            literal("points:") + cast(entry.id, String), entry.contact_id, entry.id,
            [entry.balance_after <= threshold, entry.balance_after - entry.amount > threshold,
             _sent_within(timing, groups, entry.occurred_at),
             _balance_of(entry.contact_id) <= threshold],
        )  # fmt: skip
    if trigger == Trigger.POINTS_EXPIRING:
        credit = aliased(PointsEntry)
        return Source(
            _expiry_occasion(credit), credit.contact_id, credit.contact_id,
            [*_expiring(credit), _valid(timing, groups, credit.expires_on)],
        )  # fmt: skip
    incident = aliased(Incident)
    return Source(
        _incident_occasion(incident), incident.contact_id, incident.id,
        [incident.closed_at.is_not(None), _sent_within(timing, groups, incident.closed_at)],
    )  # fmt: skip


def _expiry_occasion(credit: Any) -> Any:
    """One occasion per contact and expiry date."""
    return (literal("expiry:") + cast(credit.contact_id, String) + literal(":")
            + cast(credit.expires_on, String))  # fmt: skip


def _expiring(credit: Any) -> list[ColumnElement[bool]]:
    """A credit that expires, of a contact who still holds points."""
    return [credit.kind.in_(CREDITS), credit.expires_on.is_not(None),
            _balance_of(credit.contact_id) > 0]  # fmt: skip


def _incident_occasion(incident: Any) -> Any:
    return literal("incident:") + cast(incident.id, String)


def _occasions(step: Step, groups: dict[date, list[str]], *, now: datetime) -> Select[Any]:
    """The support occasions due now with no letter of this step yet: the same columns as
    `_contracts_due`, about the occasion instead of a contract."""
    automation, timing = step.automation, step.timing
    source = _source(automation, timing, groups)
    query: Select[Any] = (
        select(
            cast(null(), Integer).label("contract_id"), source.contact_id.label("contact_id"),
            cast(null(), Integer).label("term"), Contact.email, Contact.status,
            func.row_number().over(partition_by=source.contact_id,
                                   order_by=func.min(source.subject)).label("place"),
            func.min(source.subject).label("subject"), cast(null(), Integer).label("reminds_id"),
            source.occasion.label("occasion"),
        )
        .join(Contact, Contact.id == source.contact_id)
        .where(
            *source.due, Contact.erased_at.is_(None),
            ~exists().where(Delivery.automation_step_id == timing.step.id,
                            Delivery.occasion == source.occasion),
        )
        .group_by(source.contact_id, Contact.email, Contact.status, source.occasion)
    )  # fmt: skip
    if automation.segment is not None:
        query = query.where(_in_segment(automation, now.date(), contact_id=source.contact_id))
    return query


def holdout_seed(automation: Automation) -> int:
    """The holdout's seed: the same contracts are held out of every step of an automation."""
    return automation.id * 31 + 7


def _in_segment(
    automation: Automation, today: date, *, contact_id: Any = None
) -> ColumnElement[bool]:
    """The automation's filter: the contract (or its contact) is in its segment; for a
    reminder (`contact_id`), the contact is in it."""
    segment = automation.segment
    assert segment is not None
    if contact_id is not None:
        members = select(Contact.id).where(segments.membership(segment, today=today))
        return contact_id.in_(members)
    if segments.targets_pairs(segment):
        matching = segments.pairs(segment, today=today).subquery()
        return Contract.id.in_(select(matching.c.contract_id))
    return segments.membership(segment, today=today)


def reconsider(session: Session, step: Step, *, now: datetime, caps: Caps,
               zones: list[str]) -> tuple[int, int]:  # fmt: skip
    """Queue this step's deferred letters that have a free slot now (one per contact), and
    suppress those no longer valid; return (queued, given up)."""
    automation, timing = step.automation, step.timing
    version = timing.step.letter_version
    waiting = and_(Delivery.automation_step_id == timing.step.id,
                   Delivery.state == DeliveryState.DEFERRED)  # fmt: skip
    # Still about the same term of a live contract (or an unacknowledged letter), and within
    # its step's days.
    same_term = _still_due(timing, local_dates(zones, now))
    gone = session.execute(
        update(Delivery).where(waiting, ~same_term)
        .values(state=DeliveryState.SUPPRESSED,
                reason=Delivery.reason + "; no free slot while the letter was still due")
        .execution_options(synchronize_session=False, preserve_rowcount=True)
    )  # fmt: skip
    groups = local_dates(zones, now, automation) if automation.enabled else {}
    if not groups:
        return 0, _count(gone)
    open_now = _still_due(timing, groups)
    first = func.row_number().over(partition_by=Delivery.contact_id, order_by=Delivery.id)
    candidates = select(Delivery.id, Delivery.contact_id, first.label("place")).where(
        waiting, open_now
    ).subquery()  # fmt: skip
    cap_rules = capping.rules(caps, version.letter.category, candidates.c.contact_id, now=now)
    free = select(candidates.c.id).where(candidates.c.place == 1,
                                         ~capping.any_blocked(cap_rules))  # fmt: skip
    queued = session.execute(
        update(Delivery).where(Delivery.id.in_(free), waiting)
        .values(state=DeliveryState.QUEUED, reason="", due_at=now)
        .execution_options(synchronize_session=False, preserve_rowcount=True)
    )  # fmt: skip
    return _count(queued), _count(gone)


def _still_due(timing: Timing, groups: dict[date, list[str]]) -> ColumnElement[bool]:
    """The deferred ledger row's step is still due on the local dates of `groups`."""
    if timing.trigger in SUPPORT:
        source = _source(timing.step.automation, timing, groups)
        return exists().where(source.occasion == Delivery.occasion,
                              Contact.id == source.contact_id, *source.due)  # fmt: skip
    if timing.trigger == Trigger.UNACKNOWLEDGED:
        letter = aliased(Delivery)
        return exists().where(
            letter.id == Delivery.reminds_id, Contact.id == letter.contact_id,
            _sent_within(timing, groups, letter.sent_at), ~_acknowledged(letter),
        )  # fmt: skip
    return exists().where(
        Contract.id == Delivery.contract_id, Contract.term == Delivery.term,
        Contract.status.in_(LIVE[timing.trigger]), Contact.id == Contract.contact_id,
        _valid(timing, groups),
    )  # fmt: skip


def drop_renewed(session: Session) -> int:
    """Suppress queued automation letters whose contract was renewed (or ended) meanwhile,
    and reminders whose letter was acknowledged meanwhile."""
    live = exists().where(Contract.id == Delivery.contract_id, Contract.term == Delivery.term,
                          Contract.status != ContractStatus.CANCELLED)  # fmt: skip
    waiting = and_(Delivery.automation_step_id.is_not(None),
                   Delivery.state.in_((DeliveryState.QUEUED, DeliveryState.DEFERRED)))  # fmt: skip
    result = session.execute(
        update(Delivery)
        .where(waiting, Delivery.contract_id.is_not(None), ~live)
        .values(state=DeliveryState.SUPPRESSED, reason=RENEWED_REASON)
        .execution_options(synchronize_session=False, preserve_rowcount=True)
    )  # fmt: skip
    letter = aliased(Delivery)
    done = exists().where(letter.id == Delivery.reminds_id, _acknowledged(letter))
    answered = session.execute(
        update(Delivery)
        .where(waiting, Delivery.reminds_id.is_not(None), done)
        .values(state=DeliveryState.SUPPRESSED, reason=ACKNOWLEDGED_REASON)
        .execution_options(synchronize_session=False, preserve_rowcount=True)
    )  # fmt: skip
    return _count(result) + _count(answered)


def queued_now(session: Session, *, now: datetime, size: int = 200) -> list[list[int]]:
    """The automation letters this tick queued, in batches to enqueue."""
    ids = list(session.scalars(
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.QUEUED, Delivery.due_at == now,
               Delivery.automation_step_id.is_not(None))
        .order_by(Delivery.id)
    ))  # fmt: skip
    return [ids[i : i + size] for i in range(0, len(ids), size)]


# ---------------------------------------------------------------------------- preview


@dataclass(frozen=True)
class Planned:
    """A letter the preview expects: the day, the step, the contract (or for a reminder to
    acknowledge, the ledger row of the letter it reminds of) and its contact. `product` is
    the contract's product (a reminder: the letter's name), `anchor` the contract's date the
    step counts from (a reminder: the day the letter went out)."""

    day: date
    step: AutomationStep
    contract_id: int | None
    contact_id: int
    email: str
    product: str
    anchor: date
    reminds_id: int | None = None
    drawn: int | None = None  # a support occasion's: what its holdout draws

    @property
    def subject(self) -> int:
        """What the holdout draws: the contract, the letter reminded of, or the occasion's."""
        if self.drawn is not None:
            return self.drawn
        return self.reminds_id if self.reminds_id is not None else self.contract_id or 0


def preview(session: Session, automation: Automation, *, today: date, days: int = 14,
            contact_id: int | None = None, limit: int = 20_000) -> list[Planned]:  # fmt: skip
    """Who gets what in the next `days` days (dates in UTC), before caps, windows and
    holdout: each contract's next step on the first day it becomes valid, once per term
    (for reminders to acknowledge: each unacknowledged letter's)."""
    planned: list[Planned] = []
    if automation.trigger == Trigger.POINTS_LOW:  # a balance's drop cannot be foreseen
        return planned
    for timing in timings(automation):
        first, _ = timing.anchor_range(today)
        _, last = timing.anchor_range(today + timedelta(days=days - 1))
        if timing.trigger in SUPPORT:
            rows = _occasions_between(session, automation, timing, first, last, today=today,
                                      contact_id=contact_id, limit=limit)  # fmt: skip
        elif timing.trigger == Trigger.UNACKNOWLEDGED:
            rows = _unacknowledged_between(session, automation, timing, first, last,
                                           contact_id=contact_id, limit=limit)  # fmt: skip
        else:
            rows = _contracts_between(session, automation, timing, first, last, today=today,
                                      contact_id=contact_id, limit=limit)  # fmt: skip
        planned += [dataclasses.replace(p, day=max(timing.day(p.anchor), today)) for p in rows]
    return sorted(planned, key=lambda p: (p.day, p.step.offset_days, p.subject))


def _contracts_between(
    session: Session, automation: Automation, timing: Timing, first: date, last: date, *,
    today: date, contact_id: int | None, limit: int,
) -> list[Planned]:  # fmt: skip
    """The contracts whose anchor date lies between `first` and `last`, not yet written."""
    column = anchor(timing.trigger)
    query = (
        select(Contract.id, Contract.contact_id, Contact.email, Contract.product, column)
        .join(Contact, Contact.id == Contract.contact_id)
        .where(column.between(first, last), Contract.status.in_(LIVE[timing.trigger]),
               Contact.erased_at.is_(None),
               ~exists().where(Delivery.automation_step_id == timing.step.id,
                               Delivery.contract_id == Contract.id,
                               Delivery.term == Contract.term))
        .order_by(column, Contract.id)
        .limit(limit)
    )  # fmt: skip
    if contact_id is not None:
        query = query.where(Contract.contact_id == contact_id)
    if automation.segment is not None:
        query = query.where(_in_segment(automation, today))
    return [Planned(anchored, timing.step, contract, owner, email, product, anchored)
            for contract, owner, email, product, anchored in session.execute(query)]  # fmt: skip


def _occasions_between(
    session: Session, automation: Automation, timing: Timing, first: date, last: date, *,
    today: date, contact_id: int | None, limit: int,
) -> list[Planned]:  # fmt: skip
    """The support occasions known today whose anchor (the points' expiry date, the day an
    incident was closed, in UTC) lies between `first` and `last`, with no letter of the step
    yet: expiries of points the contact holds today, incidents closed already."""
    if timing.trigger == Trigger.POINTS_EXPIRING:
        credit = aliased(PointsEntry)
        on = credit.expires_on
        what: ColumnElement[str] = literal("points expiring")
        query = (
            select(credit.contact_id, Contact.email, what, on, credit.contact_id)
            .where(*_expiring(credit), on.between(first, last))
            .group_by(credit.contact_id, Contact.email, on)
        )  # fmt: skip
        owner, occasion = credit.contact_id, _expiry_occasion(credit)
    else:
        incident = aliased(Incident)
        start = datetime.combine(first, time(), tzinfo=zone("UTC"))
        end = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone("UTC"))
        on = incident.closed_at
        what = literal("incident #") + cast(incident.id, String) + literal(" closed")
        query = select(incident.contact_id, Contact.email, what, on, incident.id).where(
            on >= start, on < end
        )  # fmt: skip
        owner, occasion = incident.contact_id, _incident_occasion(incident)
    query = (
        query.join(Contact, Contact.id == owner)
        .where(Contact.erased_at.is_(None),
               ~exists().where(Delivery.automation_step_id == timing.step.id,
                               Delivery.occasion == occasion))
        .order_by(on, owner)
        .limit(limit)
    )  # fmt: skip
    if contact_id is not None:
        query = query.where(owner == contact_id)
    if automation.segment is not None:
        query = query.where(_in_segment(automation, today, contact_id=owner))
    found = []
    for contact, email, said, at, drawn in session.execute(query):
        anchored = at.date() if isinstance(at, datetime) else at
        assert anchored is not None  # both anchors are filtered on
        found.append(Planned(anchored, timing.step, None, contact, email, said, anchored,
                             drawn=drawn))  # fmt: skip
    return found


def _unacknowledged_between(
    session: Session, automation: Automation, timing: Timing, first: date, last: date, *,
    contact_id: int | None, limit: int,
) -> list[Planned]:  # fmt: skip
    """The awaited letters sent (UTC days) between `first` and `last`, not acknowledged and
    not yet reminded of by this step."""
    letter = aliased(Delivery)
    start = datetime.combine(first, time(), tzinfo=zone("UTC"))
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone("UTC"))
    query = (
        select(letter.id, letter.contact_id, Contact.email, Letter.name, letter.sent_at)
        .join(Contact, Contact.id == letter.contact_id)
        .join(LetterVersion, LetterVersion.id == letter.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .where(Letter.id == automation.letter_id, letter.state.in_(DELIVERED_STATES),
               letter.reminds_id.is_(None), letter.sent_at >= start, letter.sent_at < end,
               Contact.erased_at.is_(None), ~_acknowledged(letter),
               ~exists().where(Delivery.automation_step_id == timing.step.id,
                               Delivery.reminds_id == letter.id))
        .order_by(letter.sent_at, letter.id)
        .limit(limit)
    )  # fmt: skip
    if contact_id is not None:
        query = query.where(letter.contact_id == contact_id)
    return [Planned(sent.date(), timing.step, None, owner, email, name, sent.date(), reminds)
            for reminds, owner, email, name, sent in session.execute(query)
            if sent is not None]  # fmt: skip


def _count(result: Any) -> int:
    """The rows a statement wrote (asked for with preserve_rowcount)."""
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Upcoming:
    """A letter an automation is expected to write for a contact, and what will become of
    it as far as can be told now: queued, or held out or suppressed with the reason."""

    planned: Planned
    automation: Automation
    state: DeliveryState
    reason: str


def upcoming(session: Session, contact_id: int, *, today: date, days: int = 30) -> list[Upcoming]:
    """The contact's letters from enabled automations in the next `days` days, and why some
    will not go (the frequency caps and the send window are applied on the day)."""
    found = []
    for automation in list_automations(session):
        if not automation.enabled:
            continue
        for planned in preview(session, automation, today=today, days=days,
                               contact_id=contact_id):  # fmt: skip
            letter = planned.step.letter_version.letter
            checks = ledger.reachable_checks(
                letter.category, letter.kind, email=Contact.email, status=Contact.status,
                contact_id=Contact.id,
            )  # fmt: skip
            checks.append(ledger.Check(
                ledger.holdout_bucket(holdout_seed(automation), literal(planned.subject))
                < automation.holdout_percent, DeliveryState.HELD_OUT, "holdout group",
            ))  # fmt: skip
            state, reason = session.execute(
                select(*ledger.verdict(checks)).where(Contact.id == contact_id)
            ).one()  # fmt: skip
            found.append(Upcoming(planned, automation, DeliveryState(state), reason))
    return sorted(found, key=lambda u: (u.planned.day, u.automation.name))


def step_label(trigger: Trigger, offset_days: int) -> str:
    """A step as people say it: "60 days before the end", "on the end date"."""
    days = f"{offset_days} day{'' if offset_days == 1 else 's'}"
    if trigger == Trigger.BEFORE_END:
        return f"{days} before the end"
    if trigger in SUPPORT:
        when = {Trigger.POINTS_LOW: "the points balance ran low",
                Trigger.POINTS_EXPIRING: "points expire",
                Trigger.INCIDENT_CLOSED: "an incident was closed"}[trigger]  # fmt: skip
        if trigger == Trigger.POINTS_EXPIRING:
            return f"{days} before {when}"
        return f"when {when}" if offset_days == 0 else f"{days} after {when}"
    if trigger == Trigger.UNACKNOWLEDGED:
        return f"{days} after the letter, if not acknowledged"
    anchor = "start" if trigger == Trigger.ON_START else "end"
    return f"on the {anchor} date" if offset_days == 0 else f"{days} after the {anchor}"
