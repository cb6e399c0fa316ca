"""Results per campaign and per segment: audience, sent, failed, opened, clicked.

Opened and clicked count people: letters with at least one open (click) that was not a
proxy's or a scanner's (campaigns.tracking.machines). Beside them, `opened_machine` and
`clicked_machine` count the letters that machines opened (clicked), whether or not a person
did too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, distinct, func, select
from sqlalchemy.orm import Session

from campaigns.models import (
    Automation,
    AutomationStep,
    Campaign,
    Delivery,
    DeliveryState,
    Event,
    EventKind,
    Letter,
    LetterVersion,
    Segment,
)


@dataclass(frozen=True)
class FunnelRow:
    campaign_id: int
    campaign: str
    segment: str
    audience: int
    sent: int
    failed: int
    suppressed: int
    held_out: int
    opened: int
    clicked: int
    opened_machine: int
    clicked_machine: int

    @property
    def open_rate(self) -> float:
        return self.opened / self.sent if self.sent else 0.0

    @property
    def click_rate(self) -> float:
        return self.clicked / self.sent if self.sent else 0.0


def _count_state(state: DeliveryState) -> ColumnElement[int]:
    return func.count(distinct(case((Delivery.state == state, Delivery.id))))


def _count_event(kind: EventKind, *, machine: bool = False) -> ColumnElement[int]:
    # Distinct deliveries with at least one event of this kind, by a person or by a machine.
    caught = and_(Event.kind == kind, Event.is_machine.is_(machine))
    return func.count(distinct(case((caught, Event.delivery_id))))


def campaign_funnels(session: Session, *, campaign_id: int | None = None) -> list[FunnelRow]:
    """One row per campaign and the segment its letters were sent for."""
    query = (
        select(
            Campaign.id,
            Campaign.name,
            Segment.name,
            func.count(distinct(Delivery.id)),
            _count_state(DeliveryState.SENT),
            _count_state(DeliveryState.FAILED),
            _count_state(DeliveryState.SUPPRESSED),
            _count_state(DeliveryState.HELD_OUT),
            _count_event(EventKind.OPEN),
            _count_event(EventKind.CLICK),
            _count_event(EventKind.OPEN, machine=True),
            _count_event(EventKind.CLICK, machine=True),
        )  # fmt: skip
        .select_from(Delivery)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .join(Segment, Segment.id == Delivery.segment_id)
        .outerjoin(
            Event,
            and_(
                Event.delivery_id == Delivery.id, Event.kind.in_((EventKind.OPEN, EventKind.CLICK))
            ),
        )  # fmt: skip
        .group_by(Campaign.id, Campaign.name, Segment.name)
        .order_by(Campaign.id.desc(), Segment.name)
    )
    if campaign_id is not None:
        query = query.where(Campaign.id == campaign_id)
    return [FunnelRow(*tuple(row)) for row in session.execute(query)]


@dataclass(frozen=True)
class ReceivedLetter:
    """One ledger row of a contact, as the contact's page lists it."""

    delivery_id: int
    letter: str
    version: int
    campaign_id: int | None
    campaign: str | None
    state: DeliveryState
    reason: str
    created_at: datetime
    sent_at: datetime | None
    automation_id: int | None = None  # a letter of an automation: which, and its step's days
    automation: str | None = None
    step_days: int | None = None


def letters_of_contact(
    session: Session, contact_id: int, *, limit: int = 100
) -> list[ReceivedLetter]:
    """The letters a contact was sent (or held back from), newest first."""
    query = (
        select(
            Delivery.id,
            Letter.name,
            LetterVersion.number,
            Delivery.campaign_id,
            Campaign.name,
            Delivery.state,
            Delivery.reason,
            Delivery.created_at,
            Delivery.sent_at,
            Automation.id,
            Automation.name,
            AutomationStep.offset_days,
        )  # fmt: skip
        .join(LetterVersion, LetterVersion.id == Delivery.letter_version_id)
        .join(Letter, Letter.id == LetterVersion.letter_id)
        .outerjoin(Campaign, Campaign.id == Delivery.campaign_id)
        .outerjoin(AutomationStep, AutomationStep.id == Delivery.automation_step_id)
        .outerjoin(Automation, Automation.id == AutomationStep.automation_id)
        .where(Delivery.contact_id == contact_id)
        .order_by(Delivery.created_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return [ReceivedLetter(*row) for row in session.execute(query)]
